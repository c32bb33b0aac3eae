/// Exact widening of 16-bit floats to Float. Written out rather than using `Float16`, which
/// is missing on macOS x86_64; every 16-bit value has an exact Float representation.
enum HalfPrecision {
    /// IEEE 754 binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits.
    /// NaN payloads are kept (mantissa shifted into the top of Float's), as numpy does.
    @inline(__always)
    static func float(fromHalfBits bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x3FF)
        switch exponent {
        case 0:
            // Zero or subnormal: mantissa x 2^-24, exact because mantissa < 2^10.
            let magnitude = Float(mantissa) * 0x1p-24
            return sign == 0 ? magnitude : -magnitude
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)
        default:
            // Rebias the exponent from 15 to 127.
            return Float(bitPattern: sign | (exponent + 112) << 23 | mantissa << 13)
        }
    }

    /// bfloat16 is the top half of a Float, so widening is a shift.
    @inline(__always)
    static func float(fromBFloat16Bits bits: UInt16) -> Float {
        Float(bitPattern: UInt32(bits) << 16)
    }
}
