//! Which addresses are public: the classification behind `[outbound]
//! default = "public"`, pure, with nothing sent anywhere.
//!
//! IPv6 forms that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`,
//! IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are
//! judged by the IPv4 address they carry; Teredo, whose embedded address is
//! obfuscated, is never public.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Why an address is not public.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Special {
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `127.0.0.0/8`, `::1`.
    Loopback,
    /// `10/8`, `172.16/12`, `192.168/16`, `fc00::/7` (including the IPv6
    /// metadata address `fd00:ec2::254`).
    Private,
    /// `169.254/16` (including the metadata address `169.254.169.254`),
    /// `fe80::/10`, `fec0::/10`.
    LinkLocal,
    /// `100.64/10` (carrier-grade NAT, including `100.100.100.200`).
    SharedAddressSpace,
    /// `224/4`, `ff00::/8`, `255.255.255.255`.
    Multicast,
    /// Documentation, benchmarking, IETF protocol assignments (including
    /// `192.0.0.192`), reserved and discard-only ranges, Teredo.
    Reserved,
}

impl Special {
    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "unspecified",
            Self::Loopback => "loopback",
            Self::Private => "private",
            Self::LinkLocal => "link-local",
            Self::SharedAddressSpace => "shared address space",
            Self::Multicast => "multicast",
            Self::Reserved => "reserved",
        }
    }
}

/// `Ok` for a public address; otherwise what it is.
pub fn classify(addr: IpAddr) -> Result<(), Special> {
    match addr {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Result<(), Special> {
    let [a, b, c, _] = ip.octets();
    let special = match (a, b, c) {
        (0, ..) => Special::Unspecified,
        (127, ..) => Special::Loopback,
        (10, ..) | (192, 168, _) => Special::Private,
        (172, 16..=31, _) => Special::Private,
        (169, 254, _) => Special::LinkLocal,
        (100, 64..=127, _) => Special::SharedAddressSpace,
        (224..=239, ..) => Special::Multicast,
        (255, 255, 255) if ip.is_broadcast() => Special::Multicast,
        // 192.0.0/24 (IETF, with 192.0.0.192 metadata), 192.0.2/24,
        // 198.51.100/24, 203.0.113/24 (documentation), 198.18/15
        // (benchmarking), 192.88.99/24 (6to4 relays), 240/4 (reserved).
        (192, 0, 0 | 2) | (198, 51, 100) | (203, 0, 113) | (192, 88, 99) => Special::Reserved,
        (198, 18..=19, _) | (240..=255, ..) => Special::Reserved,
        _ => return Ok(()),
    };
    Err(special)
}

fn classify_v6(ip: Ipv6Addr) -> Result<(), Special> {
    if ip.is_unspecified() {
        return Err(Special::Unspecified);
    }
    if ip.is_loopback() {
        return Err(Special::Loopback);
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return classify_v4(v4);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        // IPv4-compatible (deprecated) ::a.b.c.d.
        [0, 0, 0, 0, 0, 0, hi, lo] => classify_v4(embedded(hi, lo)),
        // NAT64 64:ff9b::/96 and the local-use 64:ff9b:1::/48.
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => classify_v4(embedded(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Err(Special::Private),
        // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
        [0x2002, hi, lo, ..] => classify_v4(embedded(hi, lo)),
        // Teredo 2001::/32: the client address is obfuscated.
        [0x2001, 0, ..] => Err(Special::Reserved),
        // Documentation 2001:db8::/32 and 3fff::/20.
        [0x2001, 0x0db8, ..] => Err(Special::Reserved),
        [0x3fff, 0..=0x0fff, ..] => Err(Special::Reserved),
        // Discard-only 100::/64; benchmarking 2001:2::/48; ORCHID 2001:10::/28,
        // 2001:20::/28.
        [0x0100, 0, 0, 0, ..] => Err(Special::Reserved),
        [0x2001, 2, 0, ..] => Err(Special::Reserved),
        [0x2001, 0x10..=0x2f, ..] => Err(Special::Reserved),
        [first, ..] if first & 0xfe00 == 0xfc00 => Err(Special::Private),
        [first, ..] if first & 0xffc0 == 0xfe80 => Err(Special::LinkLocal),
        [first, ..] if first & 0xffc0 == 0xfec0 => Err(Special::LinkLocal),
        [first, ..] if first & 0xff00 == 0xff00 => Err(Special::Multicast),
        // Only global unicast (2000::/3) is routed on the internet.
        [first, ..] if first & 0xe000 != 0x2000 => Err(Special::Reserved),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Result<(), Special> {
        classify(text.parse().unwrap())
    }

    #[test]
    fn special_ipv4_ranges_are_not_public() {
        for (addr, want) in [
            ("0.0.0.0", Special::Unspecified),
            ("0.1.2.3", Special::Unspecified),
            ("127.0.0.1", Special::Loopback),
            ("127.255.255.254", Special::Loopback),
            ("10.0.0.1", Special::Private),
            ("172.16.0.1", Special::Private),
            ("172.31.255.255", Special::Private),
            ("192.168.1.10", Special::Private),
            ("169.254.169.254", Special::LinkLocal),
            ("100.64.0.1", Special::SharedAddressSpace),
            ("100.100.100.200", Special::SharedAddressSpace),
            ("224.0.0.1", Special::Multicast),
            ("239.255.255.250", Special::Multicast),
            ("255.255.255.255", Special::Multicast),
            ("192.0.0.192", Special::Reserved),
            ("192.0.2.1", Special::Reserved),
            ("198.18.0.1", Special::Reserved),
            ("198.51.100.7", Special::Reserved),
            ("203.0.113.9", Special::Reserved),
            ("240.0.0.1", Special::Reserved),
        ] {
            assert_eq!(class(addr), Err(want), "{addr}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.215.14",
            "172.15.255.255",
            "172.32.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.0.1",
            "192.167.1.1",
            "198.20.0.1",
            "223.255.255.255",
        ] {
            assert_eq!(class(public), Ok(()), "{public}");
        }
    }

    #[test]
    fn ipv6_forms_of_special_ipv4_addresses_are_not_public() {
        for (addr, want) in [
            ("::", Special::Unspecified),
            ("::1", Special::Loopback),
            ("::ffff:127.0.0.1", Special::Loopback),
            ("::ffff:7f00:1", Special::Loopback),
            ("::127.0.0.1", Special::Loopback),
            ("::ffff:169.254.169.254", Special::LinkLocal),
            ("::ffff:10.1.2.3", Special::Private),
            ("64:ff9b::169.254.169.254", Special::LinkLocal),
            ("64:ff9b::7f00:1", Special::Loopback),
            ("2002:7f00:1::", Special::Loopback),
            ("2002:a9fe:a9fe::1", Special::LinkLocal),
            ("fd00:ec2::254", Special::Private),
            ("fc00::1", Special::Private),
            ("fe80::1", Special::LinkLocal),
            ("fec0::1", Special::LinkLocal),
            ("ff02::1", Special::Multicast),
            ("2001:db8::1", Special::Reserved),
            ("2001::1", Special::Reserved),
            ("100::1", Special::Reserved),
            ("::2", Special::Unspecified),
        ] {
            assert_eq!(class(addr), Err(want), "{addr}");
        }
        for public in [
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:1.1.1.1",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert_eq!(class(public), Ok(()), "{public}");
        }
    }
}
