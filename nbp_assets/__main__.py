from nbp_assets.cli import main

main()
