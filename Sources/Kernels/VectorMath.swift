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

/// x limited to [low, high] per lane. The standard library's `clamped` goes through generic
/// pointwiseMin/Max calls that the optimiser leaves out of line (~12% of a forward pass in
/// perf); a compare-and-select inlines to vector code.
@_transparent func clamp8(_ x: Float8, _ low: Float, _ high: Float) -> Float8 {
    let raised = x.replacing(with: Float8(repeating: low), where: x .< low)
    return raised.replacing(with: Float8(repeating: high), where: raised .> high)
}

/// |x| per lane (clears the sign bit).
@inline(__always) func abs8(_ x: Float8) -> Float8 {
    unsafeBitCast(unsafeBitCast(x, to: SIMD8<UInt32>.self) & 0x7FFF_FFFF, to: Float8.self)
}

@inline(__always) func sum8(_ value: Float8) -> Float { value.sum() }

/// e^x per lane. Inputs below -87.3 give 0 (flushed), above 88.3 are clamped (e^88.3 ~ 2^127).
///
/// x = n ln2 + r with |r| <= ln2/2; e^r by a degree-7 Taylor polynomial (error < 1e-8
/// relative) in fused multiply-adds; 2^n built directly in the exponent bits.
@inline(__always)
public func exp8(_ x: Float8) -> Float8 { exp8Inline(x) }

/// The body of `exp8`, for the kernels' own loops: the public wrapper was left out of line at
/// some call sites (a call, plus splitting the vector across two registers, per 8 lanes).
@_transparent
func exp8Inline(_ x: Float8) -> Float8 {
    let clamped = clamp8(x, -87.3, 88.3)
    // Adding 1.5 * 2^23 rounds x*log2(e) to the nearest integer and leaves it in the low
    // mantissa bits: no float-to-int conversion needed.
    let shifter = Float8(repeating: 12_582_912)
    let shifted = shifter.addingProduct(clamped, 1.442_695_04)
    let n = shifted - shifter
    // ln2 split in a high part exact in float and a low correction (Cody-Waite).
    var r = clamped.addingProduct(n, -0.693_145_75)
    r = r.addingProduct(n, -1.428_606_8e-6)
    var p = Float8(repeating: 1.0 / 5040)
    p = Float8(repeating: 1.0 / 720).addingProduct(p, r)
    p = Float8(repeating: 1.0 / 120).addingProduct(p, r)
    p = Float8(repeating: 1.0 / 24).addingProduct(p, r)
    p = Float8(repeating: 1.0 / 6).addingProduct(p, r)
    p = Float8(repeating: 0.5).addingProduct(p, r)
    p = Float8(repeating: 1).addingProduct(p, r)
    p = Float8(repeating: 1).addingProduct(p, r)
    let bits = (unsafeBitCast(shifted, to: SIMD8<UInt32>.self) &+ 127) &<< 23
    let result = p * unsafeBitCast(bits, to: Float8.self)
    return result.replacing(with: 0, where: x .< -87.3)
}

/// erf(x) per lane, as x P(x^2) / Q(x^2) with x clamped to [-3.92, 3.92] (beyond that erf is
/// 1 within float spacing). P has degree 6 and Q degree 5 in x^2, fitted (weighted least
/// squares on Chebyshev nodes toward minimax, against mpmath; `encoder_fixtures.py
/// --fit-erf`) to 1.4e-9 in Double; float32 evaluation adds rounding, ~4e-7 absolute.
/// One rational replaces an exp, a reciprocal and two polynomials per lane: GELU, which
/// calls this for every (token, intermediate channel), got 2.5x faster.
@inline(__always)
public func erf8(_ x: Float8) -> Float8 { erf8Inline(x) }

/// The body of `erf8` in fused multiply-adds (see `exp8Inline`).
@_transparent
func erf8Inline(_ x: Float8) -> Float8 {
    let xc = clamp8(x, -3.92, 3.92)
    let s = xc * xc
    var p = Float8(repeating: -1.334_139_926_3e-08)
    p = Float8(repeating: 4.718_867_116_5e-06).addingProduct(p, s)
    p = Float8(repeating: 3.804_124_143_3e-04).addingProduct(p, s)
    p = Float8(repeating: 3.832_514_301_6e-03).addingProduct(p, s)
    p = Float8(repeating: 5.427_930_196_1e-02).addingProduct(p, s)
    p = Float8(repeating: 1.847_013_857_8e-01).addingProduct(p, s)
    p = Float8(repeating: 1.128_379_180_8).addingProduct(p, s)
    var q = Float8(repeating: 6.342_923_212_1e-05)
    q = Float8(repeating: 1.305_113_058_7e-03).addingProduct(q, s)
    q = Float8(repeating: 1.543_135_205_8e-02).addingProduct(q, s)
    q = Float8(repeating: 1.137_764_962_4e-01).addingProduct(q, s)
    q = Float8(repeating: 4.970_208_695_1e-01).addingProduct(q, s)
    q = Float8(repeating: 1).addingProduct(q, s)
    return xc * p / q
}

/// The standard normal CDF Phi(x) = (1 + erf(x / sqrt 2)) / 2 per lane.
@inline(__always)
public func normalCDF8(_ x: Float8) -> Float8 { normalCDF8Inline(x) }

@_transparent
func normalCDF8Inline(_ x: Float8) -> Float8 {
    Float8(repeating: 0.5).addingProduct(erf8Inline(x * 0.707_106_781_186_547_5), 0.5)
}

/// Scalar wrappers through the same polynomials, for loop tails (so every element of a
/// row is computed the same way).
@inline(__always) public func expScalar(_ x: Float) -> Float { exp8(Float8(repeating: x))[0] }
@inline(__always) public func erfScalar(_ x: Float) -> Float { erf8(Float8(repeating: x))[0] }
@inline(__always) public func normalCDFScalar(_ x: Float) -> Float { normalCDF8(Float8(repeating: x))[0] }
