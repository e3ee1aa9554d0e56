//! Low-level pieces shared by the codecs: head widths (RFC 8949 §3), raw head writing
//! with any width, and exact binary16/binary32 conversions (RFC 8949 §4.2.1, BIND-IV-A-04).

/// How a head's argument is encoded: in the initial byte (`ai < 24`) or in 1/2/4/8
/// following bytes (`ai` 24–27).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Width {
    Immediate,
    One,
    Two,
    Four,
    Eight,
}

impl Width {
    /// The preferred (shortest) width for an argument (RFC 8949 §4.1).
    pub(crate) fn shortest(arg: u64) -> Width {
        match arg {
            0..=23 => Width::Immediate,
            24..=0xff => Width::One,
            0x100..=0xffff => Width::Two,
            0x1_0000..=0xffff_ffff => Width::Four,
            _ => Width::Eight,
        }
    }

    /// Whether `arg` can be carried with this width.
    pub(crate) fn fits(self, arg: u64) -> bool {
        match self {
            Width::Immediate => arg < 24,
            Width::One => arg <= 0xff,
            Width::Two => arg <= 0xffff,
            Width::Four => arg <= 0xffff_ffff,
            Width::Eight => true,
        }
    }

    /// The next wider encoding, if any.
    pub(crate) fn wider(self) -> Option<Width> {
        match self {
            Width::Immediate => Some(Width::One),
            Width::One => Some(Width::Two),
            Width::Two => Some(Width::Four),
            Width::Four => Some(Width::Eight),
            Width::Eight => None,
        }
    }

    /// The diagnostic-notation encoding indicator digit (`_0`..`_3`), if not immediate.
    pub(crate) fn indicator(self) -> Option<u8> {
        match self {
            Width::Immediate => None,
            Width::One => Some(0),
            Width::Two => Some(1),
            Width::Four => Some(2),
            Width::Eight => Some(3),
        }
    }

    pub(crate) fn from_indicator(d: u8) -> Option<Width> {
        match d {
            0 => Some(Width::One),
            1 => Some(Width::Two),
            2 => Some(Width::Four),
            3 => Some(Width::Eight),
            _ => None,
        }
    }
}

/// Appends a head with the given width. The caller guarantees `width.fits(arg)`;
/// otherwise the argument is truncated to the width (never panics).
pub(crate) fn write_head(out: &mut Vec<u8>, major: u8, arg: u64, width: Width) {
    let m = major << 5;
    match width {
        Width::Immediate => out.push(m | (arg as u8 & 0x1f)),
        Width::One => {
            out.push(m | 24);
            out.push(arg as u8);
        }
        Width::Two => {
            out.push(m | 25);
            out.extend_from_slice(&(arg as u16).to_be_bytes());
        }
        Width::Four => {
            out.push(m | 26);
            out.extend_from_slice(&(arg as u32).to_be_bytes());
        }
        Width::Eight => {
            out.push(m | 27);
            out.extend_from_slice(&arg.to_be_bytes());
        }
    }
}

/// The raw bits of a major-type-7 float, keeping its encoded width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FloatBits {
    F16(u16),
    F32(u32),
    F64(u64),
}

/// The canonical NaN of each width (quiet, positive, no payload).
pub(crate) const NAN16: u16 = 0x7e00;
pub(crate) const NAN32: u32 = 0x7fc0_0000;
pub(crate) const NAN64: u64 = 0x7ff8_0000_0000_0000;

impl FloatBits {
    pub(crate) fn to_f64(self) -> f64 {
        match self {
            FloatBits::F16(b) => f16_to_f64(b),
            FloatBits::F32(b) => f32::from_bits(b) as f64,
            FloatBits::F64(b) => f64::from_bits(b),
        }
    }

    pub(crate) fn is_nan(self) -> bool {
        self.to_f64().is_nan()
    }

    /// Whether this is the canonical NaN pattern of its width.
    pub(crate) fn is_canonical_nan(self) -> bool {
        matches!(
            self,
            FloatBits::F16(NAN16) | FloatBits::F32(NAN32) | FloatBits::F64(NAN64)
        )
    }

    /// RFC 8949 §4.2.1 / BIND-IV-A-04: the value is in its shortest exact width and a NaN
    /// is exactly `f9 7e00`.
    pub(crate) fn is_preferred(self) -> bool {
        match self {
            FloatBits::F16(b) => !f16_to_f64(b).is_nan() || b == NAN16,
            FloatBits::F32(b) => {
                let x = f32::from_bits(b) as f64;
                !x.is_nan() && f64_to_f16_exact(x).is_none()
            }
            FloatBits::F64(b) => {
                let x = f64::from_bits(b);
                !x.is_nan() && f64_to_f32_exact(x).is_none()
            }
        }
    }

    /// The shortest exact encoding of `x`; every NaN becomes `f9 7e00`.
    pub(crate) fn preferred(x: f64) -> FloatBits {
        if x.is_nan() {
            FloatBits::F16(NAN16)
        } else if let Some(h) = f64_to_f16_exact(x) {
            FloatBits::F16(h)
        } else if let Some(s) = f64_to_f32_exact(x) {
            FloatBits::F32(s)
        } else {
            FloatBits::F64(x.to_bits())
        }
    }

    /// Appends the encoded float (`f9`/`fa`/`fb` + bits).
    pub(crate) fn write(self, out: &mut Vec<u8>) {
        match self {
            FloatBits::F16(b) => {
                out.push(0xf9);
                out.extend_from_slice(&b.to_be_bytes());
            }
            FloatBits::F32(b) => {
                out.push(0xfa);
                out.extend_from_slice(&b.to_be_bytes());
            }
            FloatBits::F64(b) => {
                out.push(0xfb);
                out.extend_from_slice(&b.to_be_bytes());
            }
        }
    }

    /// The same value one width wider (NaN → the wider canonical NaN); `None` for f64.
    pub(crate) fn wider(self) -> Option<FloatBits> {
        match self {
            FloatBits::F16(b) => {
                let x = f16_to_f64(b);
                Some(FloatBits::F32(if x.is_nan() {
                    NAN32
                } else {
                    (x as f32).to_bits()
                }))
            }
            FloatBits::F32(b) => {
                let x = f32::from_bits(b) as f64;
                Some(FloatBits::F64(if x.is_nan() { NAN64 } else { x.to_bits() }))
            }
            FloatBits::F64(_) => None,
        }
    }
}

/// 2^e as f64 for -1074 <= e <= 1023 (exact).
fn pow2(e: i32) -> f64 {
    2f64.powi(e)
}

/// IEEE 754 binary16 → binary64 (exact; NaN payloads are not kept).
pub(crate) fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((bits >> 10) & 0x1f);
    let mant = f64::from(bits & 0x3ff);
    let mag = match exp {
        0 => mant * pow2(-24),
        31 if mant == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1024.0 + mant) * pow2(e - 25),
    };
    sign * mag
}

/// The binary16 bits of `x` when `x` is exactly representable in binary16 (not NaN).
pub(crate) fn f64_to_f16_exact(x: f64) -> Option<u16> {
    if x.is_nan() {
        return None;
    }
    let sign: u16 = if x.is_sign_negative() { 0x8000 } else { 0 };
    let a = x.abs();
    if a == 0.0 {
        return Some(sign);
    }
    if a.is_infinite() {
        return Some(sign | 0x7c00);
    }
    if a < pow2(-14) {
        // Subnormal binary16: a = m * 2^-24, 1 <= m < 1024.
        let m = a * pow2(24);
        if m.fract() == 0.0 && (1.0..1024.0).contains(&m) {
            return Some(sign | m as u16);
        }
        return None;
    }
    if a > 65504.0 {
        return None;
    }
    // Normal: a = (1024 + mant) * 2^(e - 10), e in -14..=15.
    let e = ((a.to_bits() >> 52) & 0x7ff) as i32 - 1023;
    let scaled = a * pow2(10 - e);
    if scaled.fract() != 0.0 || !(1024.0..2048.0).contains(&scaled) {
        return None;
    }
    let mant = scaled as u16 - 1024;
    Some(sign | (((e + 15) as u16) << 10) | mant)
}

/// The binary32 bits of `x` when `x` is exactly representable in binary32 (not NaN).
pub(crate) fn f64_to_f32_exact(x: f64) -> Option<u32> {
    if x.is_nan() {
        return None;
    }
    let s = x as f32;
    (f64::from(s).to_bits() == x.to_bits()).then(|| s.to_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_edge_cases() {
        assert_eq!(f64_to_f16_exact(0.0), Some(0x0000));
        assert_eq!(f64_to_f16_exact(-0.0), Some(0x8000));
        assert_eq!(f64_to_f16_exact(1.0), Some(0x3c00));
        assert_eq!(f64_to_f16_exact(1.5), Some(0x3e00));
        assert_eq!(f64_to_f16_exact(65504.0), Some(0x7bff));
        assert_eq!(f64_to_f16_exact(-65504.0), Some(0xfbff));
        assert_eq!(f64_to_f16_exact(65505.0), None);
        assert_eq!(f64_to_f16_exact(65536.0), None);
        assert_eq!(f64_to_f16_exact(f64::INFINITY), Some(0x7c00));
        assert_eq!(f64_to_f16_exact(f64::NEG_INFINITY), Some(0xfc00));
        assert_eq!(f64_to_f16_exact(f64::NAN), None);
        // Smallest subnormal 2^-24, largest subnormal, smallest normal 2^-14.
        assert_eq!(f64_to_f16_exact(5.960464477539063e-8), Some(0x0001));
        assert_eq!(f64_to_f16_exact(1023.0 * pow2(-24)), Some(0x03ff));
        assert_eq!(f64_to_f16_exact(6.103515625e-05), Some(0x0400));
        assert_eq!(f64_to_f16_exact(pow2(-25)), None);
        assert_eq!(f64_to_f16_exact(1.5 * pow2(-24)), None);
        assert_eq!(f64_to_f16_exact(1e-7), None);
        assert_eq!(f64_to_f16_exact(0.1), None);
        assert_eq!(f64_to_f16_exact(-4.0), Some(0xc400));
        assert_eq!(f64_to_f16_exact(2048.0 + 1.0), None); // needs 12 significant bits
        assert_eq!(f64_to_f16_exact(2048.0 + 2.0), Some(0x6801));
        for bits in 0u16..=0xffff {
            let x = f16_to_f64(bits);
            if x.is_nan() {
                continue;
            }
            assert_eq!(f64_to_f16_exact(x), Some(bits), "{bits:04x}");
        }
    }

    #[test]
    fn preferred_widths() {
        assert_eq!(FloatBits::preferred(1.5), FloatBits::F16(0x3e00));
        assert_eq!(FloatBits::preferred(100000.0), FloatBits::F32(0x47c3_5000));
        assert_eq!(FloatBits::preferred(1.1), FloatBits::F64(1.1f64.to_bits()));
        assert_eq!(FloatBits::preferred(-f64::NAN), FloatBits::F16(NAN16));
        assert_eq!(
            FloatBits::preferred(f64::from(0.92f32)),
            FloatBits::F32(0x3f6b_851f)
        );
        assert!(!FloatBits::F32(0x3fc0_0000).is_preferred());
        assert!(!FloatBits::F16(0x7e01).is_preferred());
        assert!(!FloatBits::F32(NAN32).is_preferred());
        assert!(FloatBits::F64(0.08f64.to_bits()).is_preferred());
    }

    #[test]
    fn agrees_with_ciborium_ll_float_choice() {
        let samples = [
            0.0,
            -0.0,
            1.5,
            65504.0,
            1e-7,
            5.960464477539063e-8,
            100000.0,
            1.1,
            3.4028234663852886e38,
            1e300,
        ];
        for x in samples {
            let mut ours = Vec::new();
            FloatBits::preferred(x).write(&mut ours);
            let mut buf = [0u8; 9];
            let mut rest: &mut [u8] = &mut buf;
            ciborium_ll::Encoder::from(&mut rest)
                .push(ciborium_ll::Header::Float(x))
                .unwrap();
            let n = 9 - rest.len();
            assert_eq!(ours, &buf[..n], "{x}");
        }
    }
}
