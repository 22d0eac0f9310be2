from hs_sync.cli import main

main()
