"""The one exception type a user sees: bad input, reported in one sentence."""


class ConfigError(ValueError):
    """Invalid parameter or input file. The message names the parameter and valid choices."""


def choices_error(param: str, value: object, valid: "list[str] | tuple[str, ...]") -> ConfigError:
    return ConfigError(f"{param}: unknown value {value!r}; valid choices: {', '.join(map(str, valid))}")
