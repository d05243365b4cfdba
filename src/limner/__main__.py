from limner.cli.entry import main

main()
