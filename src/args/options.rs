//! The optional trailing arguments (`COST`, `AT`, `PENALTY`, `ID`,
//! `SHADOW`, `COMBINED`): each named once here, so every command words an
//! unknown or repeated option the same way.

use crate::algo::{Duration, Instant, MAX_TIME_US};

use super::{count, duration, integer, lease_id, shown, ArgError};

/// Optional trailing arguments of the commands.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options<'a> {
    pub cost: Option<u64>,
    pub at: Option<Instant>,
    pub penalty: Option<Duration>,
    /// `ID lease_id` (`RL.ACQUIRE`).
    pub id: Option<&'a [u8]>,
    /// `SHADOW` (a flag, no value).
    pub shadow: bool,
    /// `COMBINED` (a flag, `RL.ALL` only): reply the combined decision alone.
    pub(crate) combined: bool,
}

/// The optional trailing arguments, each named once here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Opt {
    /// `COST n`
    Cost,
    /// `AT unix_ms`
    At,
    /// `PENALTY duration`
    Penalty,
    /// `ID lease_id`
    Id,
    /// `SHADOW`, a flag with no value.
    Shadow,
    /// `COMBINED`, a flag (`RL.ALL` only).
    Combined,
}

impl Opt {
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Opt::Cost => "COST",
            Opt::At => "AT",
            Opt::Penalty => "PENALTY",
            Opt::Id => "ID",
            Opt::Shadow => "SHADOW",
            Opt::Combined => "COMBINED",
        }
    }
}

/// The options of the decision commands.
pub(crate) const DECIDE_OPTIONS: &[Opt] = &[Opt::Cost, Opt::At, Opt::Penalty, Opt::Shadow];

/// `RL.ALL`'s: the decision commands' and `COMBINED`.
pub(crate) const ALL_OPTIONS: &[Opt] =
    &[Opt::Cost, Opt::At, Opt::Penalty, Opt::Shadow, Opt::Combined];

/// Parses the options in `accepted`, each at most once, in any order.
pub(crate) fn options<'a>(args: &[&'a [u8]], accepted: &[Opt]) -> Result<Options<'a>, ArgError> {
    let mut opts = Options::default();
    let mut i = 0;
    while i < args.len() {
        let name = args[i];
        let known = accepted
            .iter()
            .find(|a| a.name().as_bytes().eq_ignore_ascii_case(name));
        let Some(&option) = known else {
            if name.eq_ignore_ascii_case(b"ALIGN") || name.eq_ignore_ascii_case(b"OFFSET") {
                return Err(ArgError::new(
                    "ALIGN [OFFSET +hh:mm] is only for FIXED, right after its window",
                ));
            }
            return Err(ArgError::new(format!(
                "unknown option{} (expected {})",
                shown(name),
                listed(accepted)
            )));
        };
        let flag = match option {
            Opt::Shadow => Some(&mut opts.shadow),
            Opt::Combined => Some(&mut opts.combined),
            _ => None,
        };
        if let Some(set) = flag {
            if *set {
                return Err(ArgError::new(format!(
                    "{} given more than once",
                    option.name()
                )));
            }
            *set = true;
            i += 1;
            continue;
        }
        let v = args
            .get(i + 1)
            .copied()
            .ok_or_else(|| ArgError::new(format!("{} needs a value", option.name())))?;
        let twice = || ArgError::new(format!("{} given more than once", option.name()));
        let name = option.name();
        match option {
            Opt::Cost if opts.cost.is_none() => opts.cost = Some(count(name, v, 0)?),
            Opt::At if opts.at.is_none() => opts.at = Some(at(v)?),
            Opt::Penalty if opts.penalty.is_none() => {
                opts.penalty = Some(duration(name, v)?.duration())
            }
            Opt::Id if opts.id.is_none() => opts.id = Some(lease_id(v)?),
            _ => return Err(twice()),
        }
        i += 2;
    }
    Ok(opts)
}

/// `A`, `A or B`, `A, B or C`.
fn listed(options: &[Opt]) -> String {
    let names: Vec<&str> = options.iter().map(|o| o.name()).collect();
    match names.as_slice() {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

fn at(arg: &[u8]) -> Result<Instant, ArgError> {
    let max_ms = MAX_TIME_US / 1000;
    let what = "a Unix time in milliseconds";
    let v = integer(Opt::At.name(), arg, what)?;
    if !(0..=max_ms as i128).contains(&v) {
        return Err(ArgError::new(format!("AT must be between 0 and {max_ms}")));
    }
    Ok(Instant::from_micros(v as u64 * 1000))
}
