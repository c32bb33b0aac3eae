// Dropout with seeded, deterministic masks, and the residual adds it is fused with.
//
// Masks come from a counter-based hash of (seed, stream, element index): the same seed
// gives the same mask whatever the thread split, and no generator state is shared.
// Keep flags are saved as one byte per element for the backward pass.

/// A mixing function of SplitMix64: a bijection of UInt64 with good avalanche.
@inline(__always)
func mix64(_ value: UInt64) -> UInt64 {
    var z = value &+ 0x9E37_79B9_7F4A_7C15
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
}

/// MurmurHash3's 32-bit finaliser on eight lanes: a bijection with full avalanche.
@_transparent
func fmix32x8(_ value: SIMD8<UInt32>) -> SIMD8<UInt32> {
    var h = value
    h ^= h &>> 16
    h &*= 0x85EB_CA6B
    h ^= h &>> 13
    h &*= 0xC2B2_AE35
    h ^= h &>> 16
    return h
}

/// mask[count] = 1 where an element is kept (probability 1 - p), 0 where dropped.
///
/// `stream` separates the dropout sites of one step (layer, site); `seed` changes per step.
/// Element i's uniform is fmix32(fmix32(i + k0) ^ k1) with (k0, k1) the two halves of
/// SplitMix64(seed ^ SplitMix64(stream)), compared with p * 2^32 (32-bit resolution).
/// Eight elements per vector step: the attention masks (H x sum of T^2 bytes per layer) made
/// the scalar 64-bit hash of the first version ~2% of a training step. Indices are taken
/// modulo 2^32 (a stream this long would repeat; masks are far shorter).
public func dropoutMask(_ mask: UnsafeMutablePointer<UInt8>, count: Int, probability: Float, seed: UInt64, stream: UInt64) {
    let threshold = UInt32(min(4_294_967_295, (Double(probability) * 4_294_967_296).rounded()))
    if threshold == 0 {
        mask.update(repeating: 1, count: count)
        return
    }
    let base = mix64(seed ^ mix64(stream))
    let k0 = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: base)), k1 = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: base >> 32))
    let lanes = SIMD8<UInt32>(0, 1, 2, 3, 4, 5, 6, 7)
    let limit = SIMD8<UInt32>(repeating: threshold)
    @inline(__always) func keep(_ start: Int) -> SIMD8<UInt32> {
        let index = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: start)) &+ lanes
        let uniform = fmix32x8(fmix32x8(index &+ k0) ^ k1)
        return SIMD8<UInt32>(repeating: 0).replacing(with: 1, where: uniform .>= limit)
    }
    let blocks = count / 8
    KernelThreads.parallelRanges(blocks, minimumChunk: 8192) { range in
        for block in range {
            // Narrow the eight 0/1 lanes to bytes (two pack instructions): one 8-byte store.
            let bytes = SIMD8<UInt8>(truncatingIfNeeded: keep(block * 8))
            UnsafeMutableRawPointer(mask + block * 8).storeBytes(of: bytes, as: SIMD8<UInt8>.self)
        }
    }
    if blocks * 8 < count {
        let flags = keep(blocks * 8)
        for index in (blocks * 8)..<count { mask[index] = UInt8(flags[index - blocks * 8]) }
    }
}

/// out[count] = inp * mask * scale + residual (residual may be nil; mask nil means no dropout,
/// scale ignored). scale is 1 / (1 - p). `out` may alias `inp` or `residual`.
public func dropoutResidualForward(
    _ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, mask: UnsafePointer<UInt8>?, scale: Float,
    residual: UnsafePointer<Float>?, count: Int
) {
    KernelThreads.parallelRanges(count, minimumChunk: 1 << 15) { range in
        for index in range {
            var value = inp[index]
            if let mask { value = mask[index] != 0 ? value * scale : 0 }
            if let residual { value += residual[index] }
            out[index] = value
        }
    }
}

/// dinp[count] += dout * mask * scale (mask nil: dinp += dout).
public func dropoutBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, mask: UnsafePointer<UInt8>?, scale: Float, count: Int
) {
    KernelThreads.parallelRanges(count, minimumChunk: 1 << 15) { range in
        for index in range {
            if let mask {
                if mask[index] != 0 { dinp[index] += dout[index] * scale }
            } else {
                dinp[index] += dout[index]
            }
        }
    }
}

/// out[count] = a + b (the residual connection). `out` may alias either input.
public func residualForward(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, count: Int) {
    KernelThreads.parallelRanges(count, minimumChunk: 1 << 15) { range in
        for index in range { out[index] = a[index] + b[index] }
    }
}

/// da[count] += dout and db[count] += dout (either may be nil).
public func residualBackward(da: UnsafeMutablePointer<Float>?, db: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>, count: Int) {
    KernelThreads.parallelRanges(count, minimumChunk: 1 << 15) { range in
        for index in range {
            da?[index] += dout[index]
            db?[index] += dout[index]
        }
    }
}
