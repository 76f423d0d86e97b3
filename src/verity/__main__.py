from verity.cli.main import main

raise SystemExit(main())
