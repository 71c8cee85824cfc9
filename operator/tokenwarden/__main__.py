from tokenwarden.cli import main

main()
