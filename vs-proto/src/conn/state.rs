//! IPVS's TCP state machine (`ip_vs_proto_tcp.c`): the states with their default timeouts and
//! "active" flag, the event a packet's flags make, and the normal and secure_tcp transition
//! tables for each direction.

use crate::wire::TcpFlags;

/// A connection's protocol state. TCP follows IPVS's TCP states; every other protocol has the
/// single state [`ConnState::Udp`] (IPVS's UDP and "other" handling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ConnState {
    /// NONE (sNO): created, no transition yet.
    None = 0,
    /// ESTABLISHED (sES).
    Established = 1,
    /// SYN_SENT (sSS).
    SynSent = 2,
    /// SYN_RECV (sSR).
    SynRecv = 3,
    /// FIN_WAIT (sFW).
    FinWait = 4,
    /// TIME_WAIT (sTW).
    TimeWait = 5,
    /// CLOSE (sCL).
    Close = 6,
    /// CLOSE_WAIT (sCW).
    CloseWait = 7,
    /// LAST_ACK (sLA).
    LastAck = 8,
    /// LISTEN (sLI).
    Listen = 9,
    /// SYNACK (sSA), reached only with the secure_tcp table.
    SynAck = 10,
    /// The single state of UDP and other protocols.
    Udp = 11,
}

/// Number of TCP states.
pub const TCP_STATES: usize = 11;

impl ConnState {
    /// All states, by index.
    pub const ALL: [ConnState; 12] = [
        ConnState::None,
        ConnState::Established,
        ConnState::SynSent,
        ConnState::SynRecv,
        ConnState::FinWait,
        ConnState::TimeWait,
        ConnState::Close,
        ConnState::CloseWait,
        ConnState::LastAck,
        ConnState::Listen,
        ConnState::SynAck,
        ConnState::Udp,
    ];

    /// The state with this index.
    #[must_use]
    pub fn from_index(index: u8) -> Option<ConnState> {
        ConnState::ALL.get(usize::from(index)).copied()
    }

    /// The state's index (its value).
    #[must_use]
    pub fn index(self) -> usize {
        usize::from(self as u8)
    }

    /// The name `ipvsadm -L -c` shows.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            ConnState::None => "NONE",
            ConnState::Established => "ESTABLISHED",
            ConnState::SynSent => "SYN_SENT",
            ConnState::SynRecv => "SYN_RECV",
            ConnState::FinWait => "FIN_WAIT",
            ConnState::TimeWait => "TIME_WAIT",
            ConnState::Close => "CLOSE",
            ConnState::CloseWait => "CLOSE_WAIT",
            ConnState::LastAck => "LAST_ACK",
            ConnState::Listen => "LISTEN",
            ConnState::SynAck => "SYNACK",
            ConnState::Udp => "UDP",
        }
    }

    /// True for the states counted in a real server's active connections (ESTABLISHED,
    /// SYN_SENT, SYN_RECV, SYNACK); UDP is never active.
    #[must_use]
    pub fn is_active(self) -> bool {
        matches!(self, ConnState::Established | ConnState::SynSent | ConnState::SynRecv | ConnState::SynAck)
    }
}

/// Which way a packet travels, as IPVS selects the table row block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Direction {
    /// Client to real server, on a connection whose replies have been seen (NAT).
    Input,
    /// Real server to client (NAT replies).
    Output,
    /// Client to real server while no reply has been seen (every DR / TUN connection).
    InputOnly,
}

/// The table event a TCP segment makes: RST beats SYN beats FIN beats ACK.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TcpEvent {
    /// SYN set (RST clear).
    Syn = 0,
    /// FIN set (no RST or SYN).
    Fin = 1,
    /// ACK set (no RST, SYN or FIN).
    Ack = 2,
    /// RST set.
    Rst = 3,
}

impl TcpEvent {
    /// The event for these flags; `None` when none of RST, SYN, FIN, ACK is set (IPVS then
    /// moves the connection to CLOSE without consulting the table).
    #[must_use]
    pub fn from_flags(flags: TcpFlags) -> Option<TcpEvent> {
        if flags.contains(TcpFlags::RST) {
            Some(TcpEvent::Rst)
        } else if flags.contains(TcpFlags::SYN) {
            Some(TcpEvent::Syn)
        } else if flags.contains(TcpFlags::FIN) {
            Some(TcpEvent::Fin)
        } else if flags.contains(TcpFlags::ACK) {
            Some(TcpEvent::Ack)
        } else {
            None
        }
    }
}

use ConnState::{
    Close as CL, CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI, SynAck as SA,
    SynRecv as SR, SynSent as SS, TimeWait as TW,
};

/// One direction's rows: `[event][current state]`.
type Rows = [[ConnState; TCP_STATES]; 4];

// Columns: NO ES SS SR FW TW CL CW LA LI SA (the kernel's order).
const NORMAL_INPUT: Rows = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
];
const NORMAL_OUTPUT: Rows = [
    /* syn */ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
    /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];
const NORMAL_INPUT_ONLY: Rows = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
    /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];
const SECURE_INPUT: Rows = [
    /* syn */ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
    /* fin */ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
    /* ack */ [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];
const SECURE_OUTPUT: Rows = [
    /* syn */ [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
    /* fin */ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
    /* rst */ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
];
const SECURE_INPUT_ONLY: Rows = [
    /* syn */ [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
    /* fin */ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
    /* ack */ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
    /* rst */ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
];

/// The next TCP state for a segment with `flags` travelling in `direction`, from `current`,
/// using the secure_tcp ("dos") table when `secure` is set. A segment with none of RST, SYN,
/// FIN, ACK moves the connection to CLOSE.
#[must_use]
pub fn tcp_transition(current: ConnState, flags: TcpFlags, direction: Direction, secure: bool) -> ConnState {
    let Some(event) = TcpEvent::from_flags(flags) else {
        return ConnState::Close;
    };
    let rows = match (direction, secure) {
        (Direction::Input, false) => &NORMAL_INPUT,
        (Direction::Output, false) => &NORMAL_OUTPUT,
        (Direction::InputOnly, false) => &NORMAL_INPUT_ONLY,
        (Direction::Input, true) => &SECURE_INPUT,
        (Direction::Output, true) => &SECURE_OUTPUT,
        (Direction::InputOnly, true) => &SECURE_INPUT_ONLY,
    };
    // UDP is not a TCP state: a TCP connection never holds it; treat it as NONE.
    let column = if current == ConnState::Udp { 0 } else { current.index() };
    rows.get(event as usize).and_then(|row| row.get(column)).copied().unwrap_or(ConnState::Close)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ConnState::None as NO;

    #[test]
    fn nat_and_dr_flows() {
        let syn = TcpFlags::SYN;
        let synack = TcpFlags::SYN | TcpFlags::ACK;
        let ack = TcpFlags::ACK;
        let fin = TcpFlags::FIN | TcpFlags::ACK;
        // NAT: client SYN, RS SYN+ACK, client ACK, client FIN, RS FIN.
        let mut s = tcp_transition(NO, syn, Direction::Input, false);
        assert_eq!(s, SR);
        s = tcp_transition(s, synack, Direction::Output, false);
        assert_eq!(s, SR);
        s = tcp_transition(s, ack, Direction::Input, false);
        assert_eq!(s, ES);
        s = tcp_transition(s, fin, Direction::Input, false);
        assert_eq!(s, CW);
        s = tcp_transition(s, fin, Direction::Output, false);
        assert_eq!(s, TW);
        // DR: only the client's side.
        let mut s = tcp_transition(NO, syn, Direction::InputOnly, false);
        s = tcp_transition(s, ack, Direction::InputOnly, false);
        assert_eq!(s, ES);
        s = tcp_transition(s, fin, Direction::InputOnly, false);
        assert_eq!(s, FW);
        assert_eq!(tcp_transition(s, ack, Direction::InputOnly, false), FW);
    }

    #[test]
    fn flag_priority_and_flagless_segments() {
        assert_eq!(TcpEvent::from_flags(TcpFlags::RST | TcpFlags::SYN), Some(TcpEvent::Rst));
        assert_eq!(TcpEvent::from_flags(TcpFlags::SYN | TcpFlags::FIN), Some(TcpEvent::Syn));
        assert_eq!(TcpEvent::from_flags(TcpFlags::FIN | TcpFlags::ACK), Some(TcpEvent::Fin));
        assert_eq!(tcp_transition(ES, TcpFlags::PSH, Direction::Input, false), CL);
    }

    #[test]
    fn secure_tcp_differences() {
        assert_eq!(tcp_transition(SR, TcpFlags::ACK, Direction::Input, true), SR);
        assert_eq!(tcp_transition(SR, TcpFlags::SYN | TcpFlags::ACK, Direction::Output, true), SA);
        assert_eq!(tcp_transition(SA, TcpFlags::ACK, Direction::Input, true), SA);
        assert_eq!(tcp_transition(SA, TcpFlags::ACK, Direction::Output, true), ES);
        assert_eq!(tcp_transition(NO, TcpFlags::SYN, Direction::InputOnly, true), SA);
        assert_eq!(tcp_transition(SA, TcpFlags::ACK, Direction::InputOnly, true), ES);
        assert_eq!(tcp_transition(SA, TcpFlags::RST, Direction::Input, true), CL);
    }

    #[test]
    fn active_states() {
        let active: heapless::Vec<&str, 12> =
            ConnState::ALL.iter().filter(|s| s.is_active()).map(|s| s.name()).collect();
        assert_eq!(active.as_slice(), &["ESTABLISHED", "SYN_SENT", "SYN_RECV", "SYNACK"]);
    }
}
