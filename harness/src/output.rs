//! Small pieces of terminal output shared by the renderers (the table itself is `report::render`, one
//! renderer for `check`, `run` and `report`).

use std::io::IsTerminal;

use crate::model::{Decision, Direction, Layer, Verdict};

/// Colour when stdout is a terminal and `NO_COLOR` is not set.
pub fn use_colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// `deny l7 ingress` etc.
pub fn verdict_short(v: &Verdict) -> String {
    match v.decision {
        Decision::Allow => {
            if v.proxied {
                "allow (proxied)".into()
            } else {
                "allow".into()
            }
        }
        Decision::Deny => {
            let mut s = String::from("deny");
            match v.layer {
                Some(Layer::L4) => s.push_str(" l4"),
                Some(Layer::L7) => s.push_str(" l7"),
                None => {}
            }
            match v.direction {
                Some(Direction::Ingress) => s.push_str(" ingress"),
                Some(Direction::Egress) => s.push_str(" egress"),
                None => {}
            }
            s
        }
    }
}
