from barque.cli.main import main

main()
