from autonn_nas.cli import main

raise SystemExit(main())
