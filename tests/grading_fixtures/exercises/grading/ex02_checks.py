"""Hidden tests whose checks misbehave on purpose: for the grader's own tests."""

QUESTIONS = {"q1_value": 1, "q2_hangs": 1, "q3_buggy": 1, "q4_after": 1}


def collect(ns):
    return {"answer": lambda: ns["answer"]}


def check_q1_value(answers):
    assert answers["answer"] == 42, "answer should be 42"


def check_q2_hangs(answers):
    while True:
        pass


def check_q3_buggy(answers):
    return {}["no such key"]


def check_q4_after(answers):
    return answers["answer"] == 42, "still checked after a hang"
