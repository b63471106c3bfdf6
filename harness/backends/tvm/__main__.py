"""`python -m harness.backends.tvm survey|tune-tasks|drive|worker SPEC`: the tuning children (internal; use
`convtx tune`). An entry of its own: `-m harness.backends.tvm.tuning` ran a module the package had already
imported (the backend registry imports it), which Python warns about in every child."""

from harness.backends.tvm.tuning import main

raise SystemExit(main())
