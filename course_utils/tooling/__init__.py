"""Maintainer tooling: run the course (`course run`), write docs/RESULTS.md (`course results`),
generate the Colab setup cells and badges (`course colab`), build the course website
(`course site`). Students never import this; on Colab their setup cell runs colab_setup.py as a
stand-alone script (standard library only)."""
