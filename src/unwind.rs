//! Unwind rules for the preload's fast stack walker, computed from `.eh_frame` and packed
//! into 16 bits so one atomic word can cache `(address, rule)`.
//!
//! On x86-64 nearly every call site unwinds with the same few facts: the canonical frame
//! address (CFA) is the stack or frame pointer plus a small offset, the return address sits
//! just below the CFA, and the caller's frame pointer is either untouched or saved at a small
//! offset from the CFA. Caching those per return address turns a DWARF interpretation of a
//! few microseconds into a few loads. Anything else (expressions, signal frames) is marked
//! [`Rule::Complex`] and handed to the general unwinder.

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, NativeEndian, Pointer, RegisterRule,
    UnwindContext, UnwindSection, X86_64,
};

/// How to step from a frame to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// CFA = (frame pointer if `from_rbp`, else stack pointer) + `cfa_offset`; return address
    /// at CFA - 8; caller's frame pointer at CFA + `rbp_offset` when saved, else unchanged.
    Simple {
        from_rbp: bool,
        cfa_offset: u32,
        rbp_offset: Option<i32>,
    },
    /// The outermost frame (`_start`, a thread's entry): the return address is undefined.
    End,
    /// A rule the fast walker does not handle; use the general unwinder.
    Complex,
}

impl Rule {
    /// The rule as one word, losslessly: bit 0 `from_rbp`, bit 1 "rbp saved", bits 2..34 the
    /// CFA offset, bits 34..66 the saved frame pointer's offset. `End` and `Complex` use
    /// values no simple rule can have. Never 0, so 0 can mean "empty".
    pub fn encode(self) -> u64 {
        match self {
            Rule::End => u64::MAX,
            Rule::Complex => u64::MAX - 1,
            Rule::Simple {
                from_rbp,
                cfa_offset,
                rbp_offset,
            } => {
                let rbp = rbp_offset.map_or(0, |o| u64::from(o as u32));
                // Bit 63 set on every simple rule keeps it non-zero and below the markers.
                (1 << 62)
                    | u64::from(from_rbp)
                    | (u64::from(rbp_offset.is_some()) << 1)
                    | (u64::from(cfa_offset) << 2)
                    | ((rbp & 0x0fff_ffff) << 34)
            }
        }
    }

    /// The rule from [`Rule::encode`]'s word; `None` for 0 or a word no rule encodes to.
    pub fn decode(w: u64) -> Option<Rule> {
        match w {
            u64::MAX => Some(Rule::End),
            w if w == u64::MAX - 1 => Some(Rule::Complex),
            w if w >> 62 == 1 => {
                let raw = ((w >> 34) & 0x0fff_ffff) as u32;
                // Sign-extend the 28-bit field.
                let rbp = ((raw << 4) as i32) >> 4;
                Some(Rule::Simple {
                    from_rbp: w & 1 == 1,
                    cfa_offset: ((w >> 2) & 0xffff_ffff) as u32,
                    rbp_offset: (w & 2 != 0).then_some(rbp),
                })
            }
            _ => None,
        }
    }
}

/// Bit 15 of a packed 16-bit rule code: the rule is packed in the code itself (see
/// [`Rule::pack16`]); codes below it are left to the cache's owner (table ids).
pub const PACKED16: u16 = 1 << 15;
/// Bit 14 of a packed code: the CFA is taken from the frame pointer.
const PACKED_FROM_RBP: u16 = 1 << 14;
/// Bits 3..=10 of a packed code: the CFA offset itself (a multiple of 8 below 2 KiB).
const PACKED_CFA: u16 = 0xff << 3;

impl Rule {
    /// The rule packed in 15 bits plus [`PACKED16`], when it fits: a stack- or frame-pointer
    /// CFA with an offset that is a nonzero multiple of 8 below 2 KiB, and the caller's frame
    /// pointer untouched or saved at a multiple of 8 within 512 bytes below the CFA. Nearly
    /// every call site's rule fits.
    ///
    /// The CFA offset sits unshifted in bits 3..=10 so that unpacking it is one `and`: the
    /// walker's dependent chain runs through it on every frame. The frame pointer's offset
    /// / 8 is split over bits 0..=2 (low) and 11..=13 (high), off that chain.
    pub fn pack16(self) -> Option<u16> {
        let Rule::Simple {
            from_rbp,
            cfa_offset,
            rbp_offset,
        } = self
        else {
            return None;
        };
        if cfa_offset % 8 != 0 || !(8..2048).contains(&cfa_offset) {
            return None;
        }
        let rbp8 = match rbp_offset {
            None => 0,
            Some(o) if o < 0 && o % 8 == 0 && -o / 8 < 64 => (-o / 8) as u16,
            Some(_) => return None,
        };
        Some(
            PACKED16
                | if from_rbp { PACKED_FROM_RBP } else { 0 }
                | cfa_offset as u16
                | (rbp8 & 7)
                | ((rbp8 >> 3) << 11),
        )
    }

    /// The rule of a code made by [`Rule::pack16`]; `None` when [`PACKED16`] is not set.
    #[inline(always)]
    pub fn unpack16(code: u16) -> Option<Rule> {
        if code & PACKED16 == 0 {
            return None;
        }
        let rbp8 = i32::from((code & 7) | (((code >> 11) & 7) << 3));
        Some(Rule::Simple {
            from_rbp: code & PACKED_FROM_RBP != 0,
            cfa_offset: u32::from(code & PACKED_CFA),
            rbp_offset: (rbp8 != 0).then_some(-rbp8 * 8),
        })
    }
}

/// The unwind sections of one loaded module, as runtime addresses and bytes.
#[derive(Debug, Clone, Copy)]
pub struct EhSections<'a> {
    /// `.eh_frame_hdr` (the PT_GNU_EH_FRAME segment) and its runtime address.
    pub hdr: &'a [u8],
    pub hdr_addr: u64,
    /// Bytes from the start of `.eh_frame` to (at most) the end of its segment.
    pub eh_frame: &'a [u8],
    pub eh_frame_addr: u64,
}

/// Where `.eh_frame` starts, as recorded in `.eh_frame_hdr`.
pub fn eh_frame_address(hdr: &[u8], hdr_addr: u64) -> Option<u64> {
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr_addr);
    let parsed = EhFrameHdr::new(hdr, NativeEndian).parse(&bases, 8).ok()?;
    match parsed.eh_frame_ptr() {
        Pointer::Direct(a) => Some(a),
        Pointer::Indirect(_) => None,
    }
}

/// The rule in effect at `pc`, or `None` when the module has no unwind information for it.
/// For a return address, pass the address of the call (return address - 1).
pub fn rule_for(s: &EhSections<'_>, pc: u64) -> Option<Rule> {
    let bases = BaseAddresses::default()
        .set_eh_frame_hdr(s.hdr_addr)
        .set_eh_frame(s.eh_frame_addr);
    let hdr = EhFrameHdr::new(s.hdr, NativeEndian).parse(&bases, 8).ok()?;
    let table = hdr.table()?;
    let eh_frame = EhFrame::new(s.eh_frame, NativeEndian);
    let mut ctx = Box::new(UnwindContext::new());
    let row = table
        .unwind_info_for_address(&eh_frame, &bases, &mut ctx, pc, EhFrame::cie_from_offset)
        .ok()?;
    let (from_rbp, cfa_offset) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let from_rbp = match register {
                X86_64::RSP => false,
                X86_64::RBP => true,
                _ => return Some(Rule::Complex),
            };
            match u32::try_from(offset) {
                Ok(o) => (from_rbp, o),
                Err(_) => return Some(Rule::Complex),
            }
        }
        CfaRule::Expression(_) => return Some(Rule::Complex),
    };
    match row.register(X86_64::RA) {
        Some(RegisterRule::Undefined) => return Some(Rule::End),
        Some(RegisterRule::Offset(-8)) => {}
        _ => return Some(Rule::Complex),
    }
    let rbp_offset = match row.register(X86_64::RBP) {
        None | Some(RegisterRule::Undefined | RegisterRule::SameValue) => None,
        Some(RegisterRule::Offset(o)) => match i32::try_from(o) {
            Ok(o) => Some(o),
            Err(_) => return Some(Rule::Complex),
        },
        _ => return Some(Rule::Complex),
    };
    let rule = Rule::Simple {
        from_rbp,
        cfa_offset,
        rbp_offset,
    };
    // A rule that does not survive encoding is one the fast walker cannot use.
    Some(
        Rule::decode(rule.encode())
            .filter(|r| *r == rule)
            .unwrap_or(Rule::Complex),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::{Object, ObjectSection, ObjectSymbol};

    #[test]
    fn encoding_round_trips() {
        let rules = [
            Rule::Simple {
                from_rbp: false,
                cfa_offset: 8,
                rbp_offset: None,
            },
            Rule::Simple {
                from_rbp: true,
                cfa_offset: 16,
                rbp_offset: Some(-16),
            },
            Rule::Simple {
                from_rbp: false,
                cfa_offset: 1 << 20,
                rbp_offset: Some(-4096),
            },
            Rule::Simple {
                from_rbp: false,
                cfa_offset: u32::MAX,
                rbp_offset: Some(-(1 << 27)),
            },
            Rule::End,
            Rule::Complex,
        ];
        for r in rules {
            assert_eq!(Rule::decode(r.encode()), Some(r));
            assert_ne!(r.encode(), 0);
        }
        assert_eq!(Rule::decode(0), None);
        assert_eq!(Rule::decode(5), None);
    }

    /// Every rule that packs comes back unchanged, and the ones just outside the limits
    /// do not pack.
    #[test]
    fn packed16_round_trips_exhaustively() {
        let mut packed = 0;
        for from_rbp in [false, true] {
            for cfa_offset in (0..2100).step_by(4) {
                let saved = (0..70)
                    .map(|k| Some(-8 * k))
                    .chain([None, Some(8), Some(-12)]);
                for rbp_offset in saved {
                    let rule = Rule::Simple {
                        from_rbp,
                        cfa_offset,
                        rbp_offset,
                    };
                    let fits = cfa_offset % 8 == 0
                        && (8..2048).contains(&cfa_offset)
                        && rbp_offset.is_none_or(|o| o < 0 && o % 8 == 0 && o > -512);
                    match rule.pack16() {
                        Some(code) => {
                            assert!(fits, "{rule:?} packed");
                            assert_ne!(code & PACKED16, 0);
                            assert_eq!(Rule::unpack16(code), Some(rule), "{code:#x}");
                            packed += 1;
                        }
                        None => assert!(!fits, "{rule:?} did not pack"),
                    }
                }
            }
        }
        assert_eq!(packed, 2 * 255 * 64);
        assert_eq!(Rule::End.pack16(), None);
        assert_eq!(Rule::Complex.pack16(), None);
        assert_eq!(Rule::unpack16(0x7fff), None);
    }

    #[inline(never)]
    fn unwind_rule_probe(x: u64) -> u64 {
        std::hint::black_box(x).wrapping_mul(3)
    }

    /// At a function's first instruction the return address was just pushed: CFA is the
    /// stack pointer + 8 and the frame pointer is untouched. This holds for every x86-64
    /// function, so it checks the whole path from the file's sections to a packed rule.
    #[test]
    fn function_entry_is_cfa_rsp_plus_8_in_this_binary() {
        std::hint::black_box(unwind_rule_probe(1));
        let path = std::env::current_exe().unwrap();
        let data = std::fs::read(&path).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let hdr = file.section_by_name(".eh_frame_hdr").unwrap();
        let eh = file.section_by_name(".eh_frame").unwrap();
        let s = EhSections {
            hdr: hdr.data().unwrap(),
            hdr_addr: hdr.address(),
            eh_frame: eh.data().unwrap(),
            eh_frame_addr: eh.address(),
        };
        assert_eq!(eh_frame_address(s.hdr, s.hdr_addr), Some(s.eh_frame_addr));
        let probe = file
            .symbols()
            .find(|sym| sym.name().is_ok_and(|n| n.contains("unwind_rule_probe")))
            .expect("probe symbol");
        let entry = Rule::Simple {
            from_rbp: false,
            cfa_offset: 8,
            rbp_offset: None,
        };
        assert_eq!(rule_for(&s, probe.address()), Some(entry));
        let main_sym = file
            .symbols()
            .find(|s| s.name() == Ok("main"))
            .expect("main");
        assert_eq!(rule_for(&s, main_sym.address()), Some(entry));
        // An address with no code has no rule.
        assert_eq!(rule_for(&s, 1), None);
    }
}
