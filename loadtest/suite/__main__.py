from loadtest.suite.run import main

raise SystemExit(main())
