"""The pure core: request schema, tracked state, diff, change events and run results.

Nothing here does I/O or imports Kafka, HTTP or SQLite (an import-linter contract checks it), so
the rules of what counts as a change are tested without a broker or an API.
"""
