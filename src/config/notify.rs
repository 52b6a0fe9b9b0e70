//! Who is told what after a run (`--notify-*`, `--heartbeat-*`), validated: the webhook
//! targets with the payload shape each expects, and the dead-man ping's URLs. What to say and
//! the sending live in `crate::notify`; these are options, so they sit with the configuration.
//! A webhook URL is its secret: no `Debug` here shows more than its host.

use crate::cli::NotifyArgs;
use crate::error::{Error, Result};
use crate::source::check_url;

/// The payload shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Slack,
    Discord,
    Teams,
    Json,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Slack => "slack",
            Format::Discord => "discord",
            Format::Teams => "teams",
            Format::Json => "json",
        }
    }
}

/// The shape a webhook URL expects, from its host (and, for Discord, its path); the generic
/// JSON for anything not recognized.
pub fn detect(url: &url::Url) -> Format {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let under = |domain: &str| host == domain || host.ends_with(&format!(".{domain}"));
    if host == "hooks.slack.com" || host == "hooks.slack-gov.com" {
        Format::Slack
    } else if (under("discord.com") || under("discordapp.com"))
        && url.path().starts_with("/api/")
        && url.path().contains("/webhooks/")
    {
        Format::Discord
    } else if under("webhook.office.com")
        || under("logic.azure.com")
        || under("powerplatform.com")
        || under("powerautomate.com")
    {
        Format::Teams
    } else {
        Format::Json
    }
}

/// One webhook: its URL (the secret) and the shape it expects.
#[derive(Clone, PartialEq, Eq)]
pub struct Target {
    pub(crate) url: url::Url,
    pub format: Format,
}

impl Target {
    /// The host, the only part of the URL that may be shown.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("host", &self.host())
            .field("format", &self.format)
            .finish()
    }
}

/// The dead-man ping's URLs, each complete.
#[derive(Clone, PartialEq, Eq)]
pub struct HeartbeatOptions {
    pub(crate) success: url::Url,
    /// `None`: a failed run pings nothing (the monitor alerts on the missing ping).
    pub(crate) fail: Option<url::Url>,
    pub(crate) start: Option<url::Url>,
}

impl std::fmt::Debug for HeartbeatOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeartbeatOptions")
            .field("host", &self.success.host_str().unwrap_or_default())
            .field("fail", &self.fail.is_some())
            .field("start", &self.start.is_some())
            .finish()
    }
}

/// Who is told what (`--notify-*` and `--heartbeat-*`), validated.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NotifyOptions {
    pub targets: Vec<Target>,
    /// Also tell about runs that found nothing new.
    pub unchanged: bool,
    pub heartbeat: Option<HeartbeatOptions>,
}

impl NotifyOptions {
    /// From the flags: every URL https (or http on loopback, or anywhere with
    /// `allow_insecure_http`); a format of auto, slack, discord, teams or json. Errors name the
    /// flag and the host, never the URL.
    pub fn from_args(args: &NotifyArgs, allow_insecure_http: bool) -> Result<Self> {
        let forced = match args.notify_format.as_str() {
            "auto" => None,
            "slack" => Some(Format::Slack),
            "discord" => Some(Format::Discord),
            "teams" => Some(Format::Teams),
            "json" => Some(Format::Json),
            other => {
                return Err(Error::Config(format!(
                    "--notify-format must be auto, slack, discord, teams or json, not {other:?}"
                )))
            }
        };
        let targets = args
            .notify_urls
            .iter()
            .map(|u| u.trim())
            .filter(|u| !u.is_empty())
            .map(|u| {
                let url = checked("--notify-url", u, allow_insecure_http)?;
                let format = forced.unwrap_or_else(|| detect(&url));
                Ok(Target { url, format })
            })
            .collect::<Result<Vec<_>>>()?;
        let heartbeat = match args.heartbeat_url.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(u) => {
                let success = checked("--heartbeat-url", u, allow_insecure_http)?;
                let suffix = args.heartbeat_fail_suffix.trim();
                Some(HeartbeatOptions {
                    fail: (!suffix.is_empty()).then(|| with_suffix(&success, suffix)),
                    start: args
                        .heartbeat_start
                        .then(|| with_suffix(&success, "/start")),
                    success,
                })
            }
        };
        Ok(NotifyOptions {
            targets,
            unchanged: args.notify_unchanged,
            heartbeat,
        })
    }
}

fn checked(flag: &str, text: &str, allow_insecure_http: bool) -> Result<url::Url> {
    let url =
        url::Url::parse(text).map_err(|e| Error::Config(format!("{flag}: not a URL ({e})")))?;
    let host = url.host_str().unwrap_or_default().to_string();
    check_url(url.as_str(), allow_insecure_http).map_err(|_| {
        Error::Config(format!(
            "{flag} (host {host:?}) must be https:// (or http:// on loopback)"
        ))
    })?;
    Ok(url)
}

/// `suffix` appended to the URL's path, the query kept (`https://hc-ping.com/<uuid>` →
/// `https://hc-ping.com/<uuid>/fail`).
fn with_suffix(url: &url::Url, suffix: &str) -> url::Url {
    let mut u = url.clone();
    let path = format!("{}{suffix}", url.path().trim_end_matches('/'));
    u.set_path(&path);
    u
}
