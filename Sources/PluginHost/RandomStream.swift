import Foundation

/// A seeded random stream (xoshiro256**, seeded through splitmix64). One per component
/// instance, derived from the run seed and the instance's name, so adding a task does not
/// change another task's dropout masks.
public final class RandomStream {
    private var state: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64, name: String) {
        // FNV-1a of the name, mixed with the seed.
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        var mixer = seed ^ hash
        func splitMix() -> UInt64 {
            mixer = mixer &+ 0x9e37_79b9_7f4a_7c15
            var value = mixer
            value = (value ^ (value >> 30)) &* 0xbf58_476d_1ce4_e5b9
            value = (value ^ (value >> 27)) &* 0x94d0_49bb_1331_11eb
            return value ^ (value >> 31)
        }
        state = (splitMix(), splitMix(), splitMix(), splitMix())
    }

    public func next() -> UInt64 {
        Self.advance(&state)
    }

    /// Uniform in [0, 1) with 24 random bits (every value exactly representable).
    public func uniform() -> Float {
        Self.uniform(Self.advance(&state))
    }

    /// The next `count` numbers `uniform()` would return, written to `out`. The state is
    /// advanced in a local copy: one access to the instance per call instead of several per
    /// number, which is what makes dropout masks of millions of values cheap.
    public func fillUniform(_ out: UnsafeMutablePointer<Float>, count: Int) {
        var local = state
        for index in 0..<count { out[index] = Self.uniform(Self.advance(&local)) }
        state = local
    }

    /// One xoshiro256** step.
    @inline(__always)
    private static func advance(_ state: inout (UInt64, UInt64, UInt64, UInt64)) -> UInt64 {
        let result = rotate(state.1 &* 5, 7) &* 9
        let shifted = state.1 << 17
        state.2 ^= state.0
        state.3 ^= state.1
        state.1 ^= state.2
        state.0 ^= state.3
        state.2 ^= shifted
        state.3 = rotate(state.3, 45)
        return result
    }

    @inline(__always)
    private static func uniform(_ bits: UInt64) -> Float { Float(bits >> 40) * 0x1p-24 }

    /// Standard normal by Box-Muller, one value per pair of uniforms (no cached second
    /// value, so a stream's position depends only on how many numbers were drawn).
    public func normal() -> Float {
        let first = (Double(next() >> 11) + 1) * 0x1p-53 // (0, 1]: log is finite
        let second = Double(next() >> 11) * 0x1p-53
        return Float((-2 * log(first)).squareRoot() * cos(2 * Double.pi * second))
    }

    /// A stream position, to replay the same numbers (e.g. one dropout mask twice in a
    /// finite-difference check).
    public struct Position: Equatable, Sendable {
        fileprivate let state: (UInt64, UInt64, UInt64, UInt64)
        public static func == (left: Position, right: Position) -> Bool { left.state == right.state }
    }

    public var position: Position {
        get { Position(state: state) }
        set { state = newValue.state }
    }

    @inline(__always)
    private static func rotate(_ value: UInt64, _ count: UInt64) -> UInt64 {
        (value << count) | (value >> (64 - count))
    }

    var opaque: OpaquePointer { OpaquePointer(Unmanaged.passUnretained(self).toOpaque()) }

    static func from(_ pointer: OpaquePointer?) -> RandomStream? {
        guard let pointer else { return nil }
        return Unmanaged<RandomStream>.fromOpaque(UnsafeRawPointer(pointer)).takeUnretainedValue()
    }
}
