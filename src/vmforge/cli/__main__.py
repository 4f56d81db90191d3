from vmforge.cli import main

main()
