"""The Amili ARM sandbox: an HTTP server that behaves like Amili's customer endpoints, with faults.

Run it with `amili-sync sandbox ...` (see `__main__.py`), start it from tests with
`service.sandbox.testing.running_sandbox`, and read README.md in this folder for what it does and
every choice made where Amili's documentation is silent. The worker never imports this package,
and this package imports nothing of the worker.
"""
