//! `cluster.nodes`: the controller and data nodes of a cluster, one `host:port:alias,mode`
//! line each.

use std::path::Path;

use super::{read_text, ClusterNodes, ConfigError, NodeEntry, NodeRole};

/// Parses `host:port` (the port 1 to 65535); the message says what is wrong.
pub fn parse_host_port(s: &str) -> Result<(String, u16), String> {
    let Some((host, port)) = s.rsplit_once(':') else {
        return Err(format!("expected host:port, got '{s}'"));
    };
    if host.is_empty() {
        return Err(format!("the host is missing in '{s}'"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok((host.to_string(), p)),
        _ => Err(format!("'{port}' is not a port (1 to 65535)")),
    }
}

/// Parses `host:port:alias`.
pub(super) fn parse_site(s: &str) -> Result<(String, u16, String), String> {
    let mut parts = s.split(':');
    let (Some(host), Some(port), Some(alias), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(format!("expected host:port:alias, got '{s}'"));
    };
    let (host, port) = parse_host_port(&format!("{host}:{port}"))?;
    check_alias(alias)?;
    Ok((host, port, alias.to_string()))
}

fn check_alias(alias: &str) -> Result<(), String> {
    let ok = !alias.is_empty()
        && alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && alias
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "alias '{alias}' must start with a letter and hold only letters, digits and '_'"
        ))
    }
}

/// Reads `cluster.nodes`: a `localSite,mode` header, then `host:port:alias,mode` lines.
pub fn load_cluster_nodes(file: &Path) -> Result<ClusterNodes, ConfigError> {
    parse_cluster_nodes(file, &read_text(file)?)
}

fn parse_cluster_nodes(file: &Path, text: &str) -> Result<ClusterNodes, ConfigError> {
    let err = |line: Option<usize>, key: &str, message: String| ConfigError {
        file: file.to_path_buf(),
        line,
        key: key.to_string(),
        message,
    };
    let mut controller: Option<(usize, NodeEntry)> = None;
    let mut datanodes: Vec<(usize, NodeEntry)> = Vec::new();
    let mut header_seen = false;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let cells: Vec<&str> = trimmed.split(',').map(str::trim).collect();
        if !header_seen {
            if cells != ["localSite", "mode"] {
                return Err(err(
                    Some(line),
                    "localSite",
                    format!("the first line must be the header 'localSite,mode', got '{trimmed}'"),
                ));
            }
            header_seen = true;
            continue;
        }
        let [site, mode] = cells[..] else {
            return Err(err(
                Some(line),
                trimmed,
                "expected host:port:alias,mode".into(),
            ));
        };
        let (host, port, alias) = parse_site(site).map_err(|m| err(Some(line), "localSite", m))?;
        let role = match mode {
            "controller" => NodeRole::Controller,
            "datanode" => NodeRole::DataNode,
            other => {
                return Err(err(
                    Some(line),
                    "mode",
                    format!("expected controller or datanode, got '{other}'"),
                ))
            }
        };
        let entry = NodeEntry {
            host,
            port,
            alias,
            role,
        };
        let seen = controller.iter().chain(datanodes.iter());
        for (first_line, other) in seen {
            if other.alias == entry.alias {
                return Err(err(
                    Some(line),
                    &entry.alias,
                    format!("alias used twice (first at line {first_line})"),
                ));
            }
            if other.site() == entry.site() {
                return Err(err(
                    Some(line),
                    &entry.alias,
                    format!(
                        "site {} used twice (first by {} at line {first_line})",
                        entry.site(),
                        other.alias
                    ),
                ));
            }
        }
        match role {
            NodeRole::Controller => {
                if let Some((first_line, _)) = &controller {
                    return Err(err(
                        Some(line),
                        "mode",
                        format!("a second controller (the first is at line {first_line}); one controller per cluster"),
                    ));
                }
                controller = Some((line, entry));
            }
            NodeRole::DataNode => datanodes.push((line, entry)),
        }
    }
    let Some((_, controller)) = controller else {
        return Err(err(None, "controller", "no controller line".into()));
    };
    if datanodes.is_empty() {
        return Err(err(None, "datanode", "no data node line".into()));
    }
    Ok(ClusterNodes {
        controller,
        datanodes: datanodes.into_iter().map(|(_, n)| n).collect(),
    })
}
