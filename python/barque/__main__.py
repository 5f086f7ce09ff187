from barque.cli.launcher import main

main()
