//! candor\nfn main() {}
