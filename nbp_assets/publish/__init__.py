"""Where MOD-107's results are published for the apps that read them."""
