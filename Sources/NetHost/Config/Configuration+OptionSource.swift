/// Modules read their options straight from the loaded config.
extension Configuration: OptionSource {}
