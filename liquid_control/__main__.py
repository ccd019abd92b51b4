"""`python -m liquid_control` is the `liquid-control` console command."""

from liquid_control.cli import main

raise SystemExit(main())
