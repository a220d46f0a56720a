"""What every layer shares about a run, below conditions, models, methods, generation, metrics,
results and training (README "Architecture"):

- ``requests``: one image to make (:class:`Request`), the sampler settings, a method's context;
- ``seeds``: each request's seed and initial noise;
- ``folder``: the run folder, the contract between generation and scoring;
- ``lock``: one process at a time in a run folder;
- ``resolve``: config + split + schema + run folder, resolved once for generation, scoring and
  training;
- ``threads``: torch's CPU threads for a run.

Import from the modules themselves: this package imports nothing, so importing one of them never
imports torch unless it needs it (``seeds`` does).
"""
