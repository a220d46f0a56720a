"""The `spbench` command line, one module per command group:

- :mod:`~spbench.cli.run`: ``run``, ``generate``, ``evaluate``
- :mod:`~spbench.cli.data`: ``data check``, ``data show``
- :mod:`~spbench.cli.train`: ``train`` (its options are the fields of ``TrainingOptions``)
- :mod:`~spbench.cli.results`: ``table``, ``check``, ``report``, ``figures``
- :mod:`~spbench.cli.convert`: ``convert vitpose``
- :mod:`~spbench.cli.ls`: ``ls``

Options several commands share are declared once in :mod:`~spbench.cli.options`; the app and
:func:`main` (one-line errors, exit statuses) are in :mod:`~spbench.cli.root`. Commands stay thin:
their bodies live in the layers below.
"""

from spbench.cli.root import app, main

__all__ = ["app", "main"]
