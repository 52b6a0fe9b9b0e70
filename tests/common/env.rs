//! Figures a test reads from the environment, so `scripts/soak.sh` can run it longer.

/// The number in environment variable `name`, or `default` when it is unset or not a number.
pub fn number<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
