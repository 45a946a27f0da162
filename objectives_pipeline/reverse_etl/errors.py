"""The exceptions the reverse-ETL push raises.

```
ReverseEtlError
└── SourceError        the source relation is not a valid name, does not exist or lacks columns
```

Row-level problems (invalid rows, items Planhat refused, rows never sent) are
not exceptions: they are recorded per row and summed up in the `PushReport`.
"""

from __future__ import annotations


class ReverseEtlError(Exception):
    """Base class of every error raised by `objectives_pipeline.reverse_etl`."""


class SourceError(ReverseEtlError, ValueError):
    """The source relation cannot be read as objectives to push; the message says why."""
