//! Per-state timeouts with IPVS's defaults, settable per state and with
//! `ipvsadm --set tcp tcpfin udp` semantics.

use super::state::{ConnState, TCP_STATES};

/// Timeout of a new connection before its first state transition (`ip_vs_conn_new`).
pub const NEW_CONN_TIMEOUT_S: u32 = 3;
/// The largest timeout ipvsadm accepts (31 days).
pub const MAX_TIMEOUT_S: u32 = 31 * 24 * 3600;

/// Timeouts in seconds for every TCP state and for UDP (and other protocols).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Timeouts {
    /// Indexed by [`ConnState::index`] for the TCP states.
    pub tcp: [u32; TCP_STATES],
    /// UDP and other protocols.
    pub udp: u32,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            // NONE, ESTABLISHED, SYN_SENT, SYN_RECV, FIN_WAIT, TIME_WAIT, CLOSE, CLOSE_WAIT,
            // LAST_ACK, LISTEN, SYNACK
            tcp: [2, 900, 120, 60, 120, 120, 10, 60, 30, 120, 120],
            udp: 300,
        }
    }
}

/// A timeout value out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TimeoutRange;

impl core::fmt::Display for TimeoutRange {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("timeout out of range")
    }
}

impl core::error::Error for TimeoutRange {}

impl Timeouts {
    /// The timeout of a state, in seconds.
    #[must_use]
    pub fn of(&self, state: ConnState) -> u32 {
        match state {
            ConnState::Udp => self.udp,
            tcp => self.tcp.get(tcp.index()).copied().unwrap_or(self.udp),
        }
    }

    /// Sets one state's timeout.
    ///
    /// # Errors
    /// [`TimeoutRange`] above 31 days.
    pub fn set(&mut self, state: ConnState, seconds: u32) -> Result<(), TimeoutRange> {
        if seconds > MAX_TIMEOUT_S {
            return Err(TimeoutRange);
        }
        match state {
            ConnState::Udp => self.udp = seconds,
            tcp => {
                if let Some(slot) = self.tcp.get_mut(tcp.index()) {
                    *slot = seconds;
                }
            }
        }
        Ok(())
    }

    /// `ipvsadm --set tcp tcpfin udp`: ESTABLISHED, FIN_WAIT and UDP; 0 keeps the current value.
    /// Running connections keep their timers; the new values apply from their next packet.
    ///
    /// # Errors
    /// [`TimeoutRange`] above 31 days (nothing is changed then).
    pub fn set_ipvsadm(&mut self, tcp: u32, tcpfin: u32, udp: u32) -> Result<(), TimeoutRange> {
        if tcp > MAX_TIMEOUT_S || tcpfin > MAX_TIMEOUT_S || udp > MAX_TIMEOUT_S {
            return Err(TimeoutRange);
        }
        for (state, value) in [(ConnState::Established, tcp), (ConnState::FinWait, tcpfin), (ConnState::Udp, udp)] {
            if value != 0 {
                self.set(state, value)?;
            }
        }
        Ok(())
    }

    /// What `ipvsadm -L --timeout` shows: (tcp, tcpfin, udp).
    #[must_use]
    pub fn ipvsadm(&self) -> (u32, u32, u32) {
        (self.of(ConnState::Established), self.of(ConnState::FinWait), self.udp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_ipvsadm_set() {
        let mut t = Timeouts::default();
        assert_eq!(t.ipvsadm(), (900, 120, 300));
        assert_eq!(t.of(ConnState::SynRecv), 60);
        assert_eq!(t.of(ConnState::Close), 10);
        t.set_ipvsadm(100, 0, 30).unwrap();
        assert_eq!(t.ipvsadm(), (100, 120, 30));
        assert_eq!(t.of(ConnState::TimeWait), 120, "tcpfin sets FIN_WAIT only");
        assert_eq!(t.set_ipvsadm(MAX_TIMEOUT_S + 1, 1, 1), Err(TimeoutRange));
        assert_eq!(t.ipvsadm(), (100, 120, 30), "nothing changed");
    }
}
