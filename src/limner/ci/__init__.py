"""Continuous integration for an app that uses Limner: the workflow ``limner init --ci`` writes
(:mod:`limner.ci.workflow`, templates in ``ci/templates/``) and the job summary it prints
(:mod:`limner.ci.summary`)."""
