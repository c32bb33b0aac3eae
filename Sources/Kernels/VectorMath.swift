// SIMD8<Float> building blocks: unaligned loads/stores, exp, erf and the normal CDF.
//
// Scalar expf/erff cost several times a vectorised polynomial and GELU calls them for every
// element of the [tokens, intermediate] activation. Accuracy targets: exp within ~2 ulp,
// erf within ~3e-7 absolute, checked in KernelsTests against Double.

public typealias Float8 = SIMD8<Float>

@inline(__always) func load8(_ pointer: UnsafePointer<Float>) -> Float8 {
    UnsafeRawPointer(pointer).loadUnaligned(as: Float8.self)
}

@inline(__always) func load8(_ pointer: UnsafeMutablePointer<Float>) -> Float8 {
    UnsafeRawPointer(pointer).loadUnaligned(as: Float8.self)
}

@inline(__always) func store8(_ value: Float8, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: Float8.self)
}

/// |x| per lane (clears the sign bit).
@inline(__always) func abs8(_ x: Float8) -> Float8 {
    unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: Float8.self)
}

@inline(__always) func sum8(_ value: Float8) -> Float { value.sum() }

/// e^x per lane. Inputs below -87.3 give 0 (flushed), above 88.3 are clamped (e^88.3 ~ 2^127).
///
/// x = n ln2 + r with |r| <= ln2/2; e^r by a degree-7 Taylor polynomial (error < 1e-8
/// relative); 2^n built directly in the exponent bits.
@inline(__always)
public func exp8(_ x: Float8) -> Float8 {
    let clamped = x.clamped(lowerBound: Float8(repeating: -87.3), upperBound: Float8(repeating: 88.3))
    // Adding 1.5 * 2^23 rounds x*log2(e) to the nearest integer and leaves it in the low
    // mantissa bits: no float-to-int conversion needed.
    let shifter = Float8(repeating: 12_582_912)
    let shifted = clamped * 1.442_695_04 + shifter
    let n = shifted - shifter
    // ln2 split in a high part exact in float and a low correction (Cody-Waite).
    var r = clamped - n * 0.693_145_75
    r = r - n * 1.428_606_8e-6
    var p = Float8(repeating: 1.0 / 5040)
    p = p * r + 1.0 / 720
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let bits = (unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &+ 127) &<< 23
    let result = p * unsafeBitCast(bits, to: Float8.self)
    return result.replacing(with: 0, where: x .< -87.3)
}

/// erfc(z) for z >= 1 (clamped to 4, where erfc < 2e-8): e^(-z^2) * Q(1/z), Q a degree-9
/// polynomial in v = (1/z - 0.625) / 0.375 fitted to erfc(z) e^(z^2) on [1, 4]
/// (least squares on Chebyshev nodes against mpmath: `encoder_fixtures.py --fit-erf`).
@inline(__always)
func erfcTail8(_ z: Float8) -> Float8 {
    let zc = z.clamped(lowerBound: Float8(repeating: 1), upperBound: Float8(repeating: 4))
    let v = (1 / zc - 0.625) * (1 / 0.375)
    var q = Float8(repeating: 3.816_642_609e-06)
    q = q * v - 2.779_312_118e-06
    q = q * v - 2.807_825_021e-05
    q = q * v + 1.242_096_956e-04
    q = q * v - 3.481_153_428e-04
    q = q * v + 4.599_362_719e-04
    q = q * v + 2.308_021_191e-03
    q = q * v - 2.424_283_488e-02
    q = q * v + 1.433_564_145e-01
    q = q * v + 3.059_529_887e-01
    let tail = exp8(-(zc * zc)) * q
    return tail.replacing(with: 0, where: z .>= 4)
}

/// erf(z) / z for |z| < 1: a degree-6 polynomial in z^2 (relative error ~2e-9).
@inline(__always)
func erfCore8(_ z: Float8) -> Float8 {
    let s = z * z
    var p = Float8(repeating: 7.932_779_198e-05)
    p = p * s - 8.034_621_590e-04
    p = p * s + 5.191_191_236e-03
    p = p * s - 2.685_538_385e-02
    p = p * s + 1.128_362_529e-01
    p = p * s - 3.761_262_983e-01
    p = p * s + 1.128_379_167
    return p
}

/// erf(x) per lane.
@inline(__always)
public func erf8(_ x: Float8) -> Float8 {
    let magnitude = abs8(x)
    let small = x * erfCore8(x.clamped(lowerBound: Float8(repeating: -1), upperBound: Float8(repeating: 1)))
    let large = 1 - erfcTail8(magnitude)
    let signedLarge = large.replacing(with: -large, where: x .< 0)
    return small.replacing(with: signedLarge, where: magnitude .>= 1)
}

/// The standard normal CDF Phi(x) = (1 + erf(x / sqrt 2)) / 2 per lane. For x < -sqrt 2 it
/// is computed as erfc(|x|/sqrt 2)/2 directly, avoiding the cancellation in 1 + erf.
@inline(__always)
public func normalCDF8(_ x: Float8) -> Float8 {
    let z = x * 0.707_106_781_186_547_5
    let magnitude = abs8(z)
    let small = 0.5 + 0.5 * z * erfCore8(z.clamped(lowerBound: Float8(repeating: -1), upperBound: Float8(repeating: 1)))
    let halfTail = 0.5 * erfcTail8(magnitude)
    let large = halfTail.replacing(with: 1 - halfTail, where: z .> 0)
    return small.replacing(with: large, where: magnitude .>= 1)
}

/// Scalar wrappers through the same polynomials, for loop tails (so every element of a
/// row is computed the same way).
@inline(__always) public func expScalar(_ x: Float) -> Float { exp8(Float8(repeating: x))[0] }
@inline(__always) public func erfScalar(_ x: Float) -> Float { erf8(Float8(repeating: x))[0] }
@inline(__always) public func normalCDFScalar(_ x: Float) -> Float { normalCDF8(Float8(repeating: x))[0] }
