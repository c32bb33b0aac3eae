import Encoder
import Foundation
import Kernels

/// Training throughput on the workload of `shared/bench/torch_mtl_step.py --mode train`:
/// two tasks of `batchSize` sequences of exactly `sequenceLength` random ids each (so packing
/// saves nothing), one encoder forward and backward per task, clipping at 1.0 and one AdamW
/// step, dropout as the model config says. Both tasks use a CLS linear head with
/// cross-entropy here (the script's second task has a mean-pooled regression head; heads are
/// a negligible part of the work).
public enum TrainingBenchmark {
    public struct Result: Sendable, Codable {
        public var trainSequencesPerSecond: Double
        public var secondsPerStep: Double
        public var batchSize: Int
        public var sequenceLength: Int
        public var steps: Int
        public var workers: Int
    }

    /// - Throws: the encoder's or trainer's errors (e.g. a sequence longer than the model takes).
    public static func run(encoder: BertEncoder, batchSize: Int = 16, sequenceLength: Int = 128,
                           steps: Int = 8, warmupSteps: Int = 2, seed: UInt64 = 0) throws -> Result {
        let head = LinearClassifierHead(hiddenSize: encoder.config.hiddenSize, classes: 4)
        let trainer = try ClassificationTrainer(encoder: encoder, head: head, encoderLearningRate: 2e-5, headLearningRate: 2e-5,
                                                weightDecay: 0.01, settings: TrainerSettings(maxGradientNorm: 1, accumulationSteps: 2, seed: seed))
        var state = seed
        func next() -> UInt64 {
            state = dropoutSeed(base: state, counter: 0)
            return state
        }
        let vocabulary = UInt64(encoder.config.vocabSize)
        let lowestId = UInt64(min(1000, encoder.config.vocabSize - 1))
        func task() throws -> (batch: PackedBatch, labels: [Int32]) {
            let sequences = (0..<batchSize).map { _ in
                (0..<sequenceLength).map { _ in Int32(lowestId + next() % (vocabulary - lowestId)) }
            }
            return (try PackedBatch(sequences: sequences), (0..<batchSize).map { _ in Int32(next() % 4) })
        }
        for _ in 0..<warmupSteps { _ = try trainer.step([try task(), try task()]) }
        var elapsed: Double = 0
        for _ in 0..<steps {
            let batches = [try task(), try task()]
            let start = DispatchTime.now().uptimeNanoseconds
            _ = try trainer.step(batches)
            elapsed += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
        return Result(trainSequencesPerSecond: Double(2 * batchSize * steps) / elapsed, secondsPerStep: elapsed / Double(steps),
                      batchSize: batchSize, sequenceLength: sequenceLength, steps: steps, workers: KernelThreads.workerCount)
    }
}
