import Foundation
import Kernels

/// AdamW hyperparameters shared by every group (torch.optim.AdamW's defaults).
public struct AdamWSettings: Codable, Equatable, Sendable {
    public var beta1: Double
    public var beta2: Double
    public var epsilon: Double

    public init(beta1: Double = 0.9, beta2: Double = 0.999, epsilon: Double = 1e-8) {
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
    }

    func validate() throws {
        for (name, value) in [("beta1", beta1), ("beta2", beta2)] where !(value >= 0 && value < 1) {
            throw TrainingError.invalidOptimizerSetting(name: name, value: value, expected: "a value in [0, 1)")
        }
        guard epsilon >= 0, epsilon.isFinite else {
            throw TrainingError.invalidOptimizerSetting(name: "epsilon", value: epsilon, expected: "a finite value >= 0")
        }
    }
}

/// AdamW over parameter groups, matching `torch.optim.AdamW` step for step: bias-corrected
/// moments and decoupled weight decay `p *= 1 - lr * weight_decay` before the Adam update.
///
/// The first and second moments live in one allocation each, holding the trainable values
/// only, in registration order: a frozen range has no moments and costs nothing per step.
/// One step counter serves all parameters because they always step together.
public final class AdamW {
    public let settings: AdamWSettings
    public private(set) var groups: [ParameterGroup]
    /// Optimizer steps taken so far (torch's `state["step"]`).
    public internal(set) var completedSteps: Int = 0
    /// Number of trainable values, and the length of each moment buffer.
    public let trainableParameterCount: Int

    /// A trainable range with its pointers resolved and its place in the moment buffers.
    struct Segment {
        let name: String
        let storage: any ParameterStorage
        let values: UnsafeMutablePointer<Float>
        let gradients: UnsafeMutablePointer<Float>
        let count: Int
        let momentOffset: Int
        let groupIndex: Int
        let appliesWeightDecay: Bool
    }
    let segments: [Segment]
    /// (trainableParameterCount) first moments m, then second moments v.
    let firstMoments: UnsafeMutablePointer<Float>
    let secondMoments: UnsafeMutablePointer<Float>

    /// - Throws: `TrainingError` for bad settings, a range outside its storage, a duplicate
    ///   name, or two ranges overlapping in one storage.
    public init(groups: [ParameterGroup], settings: AdamWSettings = AdamWSettings()) throws {
        try settings.validate()
        var names = Set<String>()
        var segments: [Segment] = []
        var offset = 0
        // Ranges per storage, to find overlaps: ObjectIdentifier -> (range, name).
        var claimed: [ObjectIdentifier: [(Range<Int>, String)]] = [:]
        for (groupIndex, group) in groups.enumerated() {
            for (name, value) in [("learning rate of \(group.name)", group.learningRate), ("weight decay of \(group.name)", group.weightDecay)]
            where !(value >= 0 && value.isFinite) {
                throw TrainingError.invalidOptimizerSetting(name: name, value: value, expected: "a finite value >= 0")
            }
            for parameter in group.parameters {
                guard names.insert(parameter.name).inserted else { throw TrainingError.duplicateParameterName(parameter.name) }
                let storageCount = parameter.storage.parameterCount
                guard parameter.range.lowerBound >= 0, parameter.range.upperBound <= storageCount else {
                    throw TrainingError.parameterOutOfBounds(name: parameter.name, range: parameter.range, storageCount: storageCount)
                }
                claimed[ObjectIdentifier(parameter.storage), default: []].append((parameter.range, parameter.name))
                guard group.trainable, parameter.trainable, !parameter.range.isEmpty else { continue }
                segments.append(Segment(
                    name: parameter.name, storage: parameter.storage,
                    values: parameter.storage.parameterValues + parameter.range.lowerBound,
                    gradients: parameter.storage.parameterGradients + parameter.range.lowerBound,
                    count: parameter.range.count, momentOffset: offset, groupIndex: groupIndex,
                    appliesWeightDecay: parameter.appliesWeightDecay))
                offset += parameter.range.count
            }
        }
        for ranges in claimed.values {
            let sorted = ranges.sorted { $0.0.lowerBound < $1.0.lowerBound }
            for (previous, next) in zip(sorted, sorted.dropFirst()) where previous.0.overlaps(next.0) {
                throw TrainingError.overlappingParameters(first: previous.1, second: next.1)
            }
        }
        self.settings = settings
        self.groups = groups
        self.segments = segments
        trainableParameterCount = offset
        firstMoments = AdamW.allocateZeroed(offset)
        secondMoments = AdamW.allocateZeroed(offset)
    }

    deinit {
        UnsafeMutableRawPointer(firstMoments).deallocate()
        UnsafeMutableRawPointer(secondMoments).deallocate()
    }

    private static func allocateZeroed(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride, alignment: 64)
        return raw.initializeMemory(as: Float.self, repeating: 0, count: max(count, 1))
    }

    /// Names of the trainable parameters, in moment-buffer order.
    public var trainableParameterNames: [String] { segments.map(\.name) }

    /// Sets one group's base learning rate (the schedule multiplies it).
    public func setLearningRate(_ learningRate: Double, group name: String) throws {
        guard learningRate >= 0, learningRate.isFinite else {
            throw TrainingError.invalidOptimizerSetting(name: "learning rate of \(name)", value: learningRate, expected: "a finite value >= 0")
        }
        guard let index = groups.firstIndex(where: { $0.name == name }) else {
            throw TrainingError.invalidOptimizerSetting(name: "group \(name)", value: learningRate, expected: "one of the registered groups \(groups.map(\.name))")
        }
        groups[index].learningRate = learningRate
    }

    /// Zeroes the gradients of every trainable range (frozen ones are never written).
    public func zeroGradients() {
        for segment in segments {
            segment.gradients.update(repeating: 0, count: segment.count)
        }
    }

    /// The L2 norm of all trainable gradients taken together.
    public func gradientNorm() -> Float {
        var sum: Double = 0
        for segment in segments { sum += sumOfSquares(segment.gradients, count: segment.count) }
        return Float(sum.squareRoot())
    }

    /// Scales all trainable gradients so their joint L2 norm is at most `maxNorm`, exactly as
    /// `torch.nn.utils.clip_grad_norm_`: coefficient `maxNorm / (norm + 1e-6)`, applied only
    /// when below 1.
    /// - Returns: the norm before clipping (NaN or infinity is returned, not thrown).
    @discardableResult
    public func clipGradientNorm(maxNorm: Float) -> Float {
        let norm = gradientNorm()
        let coefficient = Self.clipCoefficient(norm: norm, maxNorm: maxNorm)
        if coefficient < 1 {
            for segment in segments { scale(segment.gradients, count: segment.count, by: coefficient) }
        }
        return norm
    }

    /// What `clip_grad_norm_` multiplies the gradients by: `maxNorm / (norm + 1e-6)`, at most 1.
    public static func clipCoefficient(norm: Float, maxNorm: Float) -> Float {
        min(maxNorm / (norm + 1e-6), 1)
    }

    /// One AdamW update of every trainable value with each group's learning rate times
    /// `learningRateMultiplier` (the schedule's factor for this step).
    public func step(learningRateMultiplier: Double = 1) {
        update(learningRateMultiplier: learningRateMultiplier, gradientScale: 1, zeroingGradients: false)
    }

    /// `clipGradientNorm` (scaling by `gradientScale`, see `clipCoefficient`), `step` and
    /// `zeroGradients` in one pass: each gradient is scaled as it is read and zeroed once used.
    /// The same arithmetic as the three calls, bit for bit, with two fewer passes over the
    /// gradients (the optimizer is memory-bound).
    public func stepAndZeroGradients(learningRateMultiplier: Double, gradientScale: Float) {
        update(learningRateMultiplier: learningRateMultiplier, gradientScale: gradientScale, zeroingGradients: true)
    }

    private func update(learningRateMultiplier: Double, gradientScale: Float, zeroingGradients: Bool) {
        completedSteps += 1
        let step = Double(completedSteps)
        // Scalars are formed in Double and rounded once, as torch does with Python floats.
        let biasCorrection1 = 1 - pow(settings.beta1, step)
        let biasCorrection2Root = (1 - pow(settings.beta2, step)).squareRoot()
        let beta2 = Float(settings.beta2)
        let oneMinusBeta1 = Float(1 - settings.beta1), oneMinusBeta2 = Float(1 - settings.beta2)
        let epsilon = Float(settings.epsilon)
        let biasCorrection2RootFloat = Float(biasCorrection2Root)
        for segment in segments {
            let group = groups[segment.groupIndex]
            let learningRate = group.learningRate * learningRateMultiplier
            let decay = segment.appliesWeightDecay ? Float(1 - learningRate * group.weightDecay) : 1
            let stepSize = Float(learningRate / biasCorrection1)
            let values = segment.values, gradients = segment.gradients
            let m = firstMoments + segment.momentOffset, v = secondMoments + segment.momentOffset
            // Element-wise, so any split across workers gives identical results.
            let update = AdamWUpdate(decay: decay, oneMinusBeta1: oneMinusBeta1, beta2: beta2, oneMinusBeta2: oneMinusBeta2,
                                     biasCorrection2Root: biasCorrection2RootFloat, epsilon: epsilon, stepSize: stepSize)
            KernelThreads.parallelRanges(segment.count, minimumChunk: 1 << 16) { range in
                update.apply(values: values, gradients: gradients, firstMoments: m, secondMoments: v, range: range,
                             gradientScale: gradientScale, zeroingGradients: zeroingGradients)
            }
        }
    }
}

/// The per-element AdamW arithmetic with this step's scalars, in the same operation order
/// as torch's single-tensor implementation. Eight lanes at a time (the same IEEE operations
/// per lane, so the result equals the scalar loop's), then a scalar tail.
struct AdamWUpdate {
    let decay, oneMinusBeta1, beta2, oneMinusBeta2, biasCorrection2Root, epsilon, stepSize: Float

    /// - Parameters:
    ///   - gradientScale: multiplies each gradient as it is read (gradient clipping; 1: none).
    ///   - zeroingGradients: writes 0 over each gradient once used.
    @inline(__always)
    func apply(values: UnsafeMutablePointer<Float>, gradients: UnsafeMutablePointer<Float>,
               firstMoments m: UnsafeMutablePointer<Float>, secondMoments v: UnsafeMutablePointer<Float>, range: Range<Int>,
               gradientScale: Float, zeroingGradients: Bool) {
        var index = range.lowerBound
        // Scaling by exactly 1 is skipped so an unclipped step does not even multiply.
        let scaling = gradientScale != 1
        while index + 8 <= range.upperBound {
            var gradient = load8(gradients + index)
            if scaling { gradient *= gradientScale }
            if zeroingGradients { store8(SIMD8<Float>(), gradients + index) }
            let value = load8(values + index) * decay
            let previous = load8(m + index)
            // torch's lerp with weight < 0.5: m + w * (g - m).
            let firstMoment = previous + oneMinusBeta1 * (gradient - previous)
            let secondMoment = load8(v + index) * beta2 + oneMinusBeta2 * gradient * gradient
            store8(firstMoment, m + index)
            store8(secondMoment, v + index)
            let denominator = secondMoment.squareRoot() / biasCorrection2Root + epsilon
            store8(value - stepSize * (firstMoment / denominator), values + index)
            index += 8
        }
        while index < range.upperBound {
            var gradient = gradients[index]
            if scaling { gradient *= gradientScale }
            if zeroingGradients { gradients[index] = 0 }
            let value = values[index] * decay
            let firstMoment = m[index] + oneMinusBeta1 * (gradient - m[index])
            let secondMoment = v[index] * beta2 + oneMinusBeta2 * gradient * gradient
            m[index] = firstMoment
            v[index] = secondMoment
            let denominator = secondMoment.squareRoot() / biasCorrection2Root + epsilon
            values[index] = value - stepSize * (firstMoment / denominator)
            index += 1
        }
    }
}

@inline(__always) private func load8(_ pointer: UnsafePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) private func load8(_ pointer: UnsafeMutablePointer<Float>) -> SIMD8<Float> {
    UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self)
}

@inline(__always) private func store8(_ value: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(pointer).storeBytes(of: value, as: SIMD8<Float>.self)
}

/// Sum of x^2 in Double. Fixed blocks of Float SIMD partial sums, added in block order, so
/// the result does not depend on how many workers ran (determinism), and Float rounding stays
/// far below what clipping can notice.
func sumOfSquares(_ pointer: UnsafePointer<Float>, count: Int) -> Double {
    let blockSize = 4096
    let blocks = (count + blockSize - 1) / blockSize
    guard blocks > 1 else { return blockSumOfSquares(pointer, count: count) }
    var partials = [Double](repeating: 0, count: blocks)
    partials.withUnsafeMutableBufferPointer { output in
        guard let results = output.baseAddress else { return }
        KernelThreads.parallelRanges(blocks, minimumChunk: 16) { range in
            for block in range {
                let start = block * blockSize
                results[block] = blockSumOfSquares(pointer + start, count: min(blockSize, count - start))
            }
        }
    }
    return partials.reduce(0, +)
}

private func blockSumOfSquares(_ pointer: UnsafePointer<Float>, count: Int) -> Double {
    var lanes = SIMD8<Float>()
    var index = 0
    while index + 8 <= count {
        let x = UnsafeRawPointer(pointer + index).loadUnaligned(as: SIMD8<Float>.self)
        lanes += x * x
        index += 8
    }
    var partial = Double(lanes.sum())
    while index < count {
        partial += Double(pointer[index]) * Double(pointer[index])
        index += 1
    }
    return partial
}

func scale(_ pointer: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
    KernelThreads.parallelRanges(count, minimumChunk: 1 << 16) { range in
        for index in range { pointer[index] *= factor }
    }
}
