from ai_gateway.cli import main

raise SystemExit(main())
