//! The `loadmodule` arguments: read once at load, and worded for the
//! server log rather than for a client, so their errors are plain strings.

use super::count;

/// Settings given as module arguments (`loadmodule ... log-max 5000`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModuleArgs {
    pub(crate) log_max: Option<u64>,
    pub(crate) lease_max: Option<u64>,
    pub(crate) cell_compat: Option<bool>,
}

/// Parses `name value` pairs given to `loadmodule`; names may also be
/// written with the `ratelimit.` prefix `CONFIG SET` uses. The error says
/// which argument is wrong, for the server log.
pub fn module_args(args: &[&[u8]], log_max_ceiling: u64) -> Result<ModuleArgs, String> {
    let lease_max_ceiling = crate::algo::MAX_LEASES;
    let mut out = ModuleArgs::default();
    if !args.len().is_multiple_of(2) {
        return Err(format!(
            "module arguments come in 'name value' pairs; '{}' has no value",
            String::from_utf8_lossy(args[args.len() - 1])
        ));
    }
    for pair in args.chunks(2) {
        let raw_name = String::from_utf8_lossy(pair[0]).to_ascii_lowercase();
        let name = raw_name.strip_prefix("ratelimit.").unwrap_or(&raw_name);
        let value = String::from_utf8_lossy(pair[1]);
        match name {
            "log-max" => {
                let v = count("log-max", pair[1], 1).map_err(|e| e.0)?;
                if v > log_max_ceiling {
                    return Err(format!(
                        "log-max is too large (at most {log_max_ceiling}), got '{value}'"
                    ));
                }
                if out.log_max.replace(v).is_some() {
                    return Err("log-max given more than once".into());
                }
            }
            "lease-max" => {
                let v = count("lease-max", pair[1], 1).map_err(|e| e.0)?;
                if v > lease_max_ceiling {
                    return Err(format!(
                        "lease-max is too large (at most {lease_max_ceiling}), got '{value}'"
                    ));
                }
                if out.lease_max.replace(v).is_some() {
                    return Err("lease-max given more than once".into());
                }
            }
            "cell-compat" => {
                let v = match value.to_ascii_lowercase().as_str() {
                    "yes" | "on" | "1" | "true" => true,
                    "no" | "off" | "0" | "false" => false,
                    _ => return Err(format!("cell-compat must be yes or no, got '{value}'")),
                };
                if out.cell_compat.replace(v).is_some() {
                    return Err("cell-compat given more than once".into());
                }
            }
            _ => {
                return Err(format!(
                "unknown module argument '{raw_name}' (expected log-max, lease-max or cell-compat)"
            ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_arguments() {
        let m = |line: &str| {
            let v: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
            module_args(&v, 1_000_000)
        };
        assert_eq!(m("").unwrap(), ModuleArgs::default());
        assert_eq!(
            m("log-max 5 ratelimit.cell-compat yes lease-max 7").unwrap(),
            ModuleArgs {
                log_max: Some(5),
                lease_max: Some(7),
                cell_compat: Some(true)
            }
        );
        assert_eq!(
            m("lease-max 1000001").unwrap_err(),
            "lease-max is too large (at most 1000000), got '1000001'"
        );
        assert_eq!(
            m("LOG-MAX 5 cell-compat off").unwrap().cell_compat,
            Some(false)
        );
        assert_eq!(
            m("log-max").unwrap_err(),
            "module arguments come in 'name value' pairs; 'log-max' has no value"
        );
        assert_eq!(
            m("log-max 0").unwrap_err(),
            "log-max must be greater than 0"
        );
        assert_eq!(
            m("log-max 2000000").unwrap_err(),
            "log-max is too large (at most 1000000), got '2000000'"
        );
        assert_eq!(
            m("cell-compat maybe").unwrap_err(),
            "cell-compat must be yes or no, got 'maybe'"
        );
        assert_eq!(
            m("speed 9").unwrap_err(),
            "unknown module argument 'speed' (expected log-max, lease-max or cell-compat)"
        );
    }
}
