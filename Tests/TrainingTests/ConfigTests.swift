import Foundation
import XCTest
@testable import Training

final class ConfigTests: XCTestCase {
    /// The smallest valid config: one task with a training file.
    let minimal = """
        tasks:
          sentiment:
            data: {train: data/train.jsonl}
        """

    func testMinimalConfigGetsDocumentedDefaults() throws {
        let config = try RunConfig.parse(yaml: minimal, file: "configs/run.yaml")
        XCTAssertEqual(config.model, "models/all-MiniLM-L6-v2")
        XCTAssertEqual(config.maxLength, 128)
        XCTAssertEqual(config.output, "runs/run")
        XCTAssertEqual(config.cacheDirectory, "runs/.polyhead-cache")
        XCTAssertEqual(config.pluginPaths, [])
        let task = try XCTUnwrap(config.tasks.first)
        XCTAssertEqual(task.name, "sentiment")
        XCTAssertEqual(task.type, .classification)
        XCTAssertEqual(task.head.plugin, "polyhead.classification")
        XCTAssertEqual(task.fields, FieldNames(text: "text", textPair: nil, label: "label", words: nil))
        XCTAssertNil(task.labels)
        XCTAssertEqual(task.metrics, [.accuracy, .macroF1])
        XCTAssertEqual(task.lossWeight, 1)
        XCTAssertEqual(task.sampling, TaskSamplingSettings(oversample: 1, cap: nil))
        XCTAssertEqual(task.classWeights, ClassWeightSetting.none)
        let training = config.training
        XCTAssertEqual(training.length, .epochs(3))
        XCTAssertEqual(training.batchSize, 32)
        XCTAssertEqual(training.sampling, .proportional)
        XCTAssertEqual(training.mixing, .mixed)
        XCTAssertEqual(training.lossWeighting.name, "static")
        XCTAssertEqual(training.optimizer.learningRate, 5e-5)
        XCTAssertEqual(training.optimizer.group(named: "loss_weighting")?.weightDecay, 0)
        XCTAssertEqual(training.optimizer.group(named: "encoder")?.weightDecay, 0.01)
        XCTAssertEqual(training.schedule, ScheduleSettings(kind: .linear, warmup: .steps(0)))
        XCTAssertEqual(training.clipNorm, 1.0)
        XCTAssertEqual(training.gradientAccumulation, 1)
        XCTAssertNil(training.evalInterval)
        XCTAssertEqual(training.logInterval, 50)
        XCTAssertEqual(training.earlyStopping, EarlyStoppingSettings(metric: "overall", patience: nil, mode: .max, minimumDelta: 0))
        XCTAssertEqual(training.seed, 42)
        XCTAssertFalse(training.skipMalformedRows)
    }

    /// The full example in docs/config.md must parse and mean what the docs say.
    func testDocumentedFullExampleParses() throws {
        let docs = try String(contentsOf: DataSideFixtures.repository.appendingPathComponent("docs/config.md"), encoding: .utf8)
        let example = try XCTUnwrap(Self.firstYAMLBlock(after: "## Full example", in: docs))
        let config = try RunConfig.parse(yaml: example, file: "docs/config.md")
        XCTAssertEqual(config.tasks.map(\.name), ["supersense", "depth", "definition", "usage"])
        XCTAssertEqual(config.pluginPaths, [".build/release"])
        XCTAssertEqual(config.routers.map(\.name), ["shared_mmoe"])
        XCTAssertEqual(config.routers.first?.settings.options.jsonText, #"{"experts":4,"expert_width":256}"#)
        XCTAssertEqual(config.adapters.first?.settings.options["targets"], .array([.string("query"), .string("value")]))

        let supersense = try XCTUnwrap(config.task(named: "supersense"))
        XCTAssertEqual(supersense.head.options.jsonText, #"{"pooling":"cls","dropout":0.1}"#)
        XCTAssertEqual(supersense.metrics, [.macroF1, .accuracy, .mcc])
        XCTAssertEqual(supersense.classWeights, .balanced)
        XCTAssertEqual(supersense.router, "shared_mmoe")
        XCTAssertEqual(supersense.data.test, "examples/wordnet/data/supersense.test.jsonl")

        let depth = try XCTUnwrap(config.task(named: "depth"))
        XCTAssertEqual(depth.type, .regression)
        XCTAssertEqual(depth.lossWeight, 0.5)
        XCTAssertNil(depth.data.test)

        let definition = try XCTUnwrap(config.task(named: "definition"))
        XCTAssertEqual(definition.fields.textPair, "text_pair")
        XCTAssertEqual(definition.labels, ["no", "yes"])
        XCTAssertEqual(definition.sampling.oversample, 0.5)

        let usage = try XCTUnwrap(config.task(named: "usage"))
        XCTAssertEqual(usage.type, .tokenClassification)
        XCTAssertEqual(usage.fields, FieldNames(text: "text", textPair: nil, label: "labels", words: "words"))
        XCTAssertEqual(usage.sampling.cap, 3000)
        XCTAssertEqual(usage.adapter, "lora")
        XCTAssertEqual(usage.head.plugin, "polyhead.token_classification")

        let training = config.training
        XCTAssertEqual(training.sampling, .temperature(2))
        XCTAssertEqual(training.lossWeighting.name, "uncertainty")
        XCTAssertEqual(training.optimizer.group(named: "encoder")?.learningRate, 3e-5)
        XCTAssertEqual(training.optimizer.group(named: "heads")?.weightDecay, 0)
        XCTAssertEqual(training.optimizer.group(named: "routers")?.learningRate, 5e-5)
        XCTAssertEqual(training.optimizer.group(named: "loss_weighting")?.learningRate, 1e-2)
        XCTAssertEqual(training.schedule.warmupSteps(totalSteps: 1000), 60)
        XCTAssertEqual(training.evalInterval, 500)
        XCTAssertEqual(training.earlyStopping.patience, 3)
        XCTAssertEqual(training.seed, 13)
    }

    /// Every key the decoder accepts appears in docs/config.md.
    func testEveryKeyIsDocumented() throws {
        let docs = try String(contentsOf: DataSideFixtures.repository.appendingPathComponent("docs/config.md"), encoding: .utf8)
        let keys = RunConfig.topLevelKeys + RunConfig.taskKeys + RunConfig.trainingKeys
            + ["data.train", "data.dev", "data.test", "fields.text", "fields.text_pair", "fields.label", "fields.words",
               "sampling.oversample", "sampling.cap", "sampling.temperature", "optimizer.lr", "optimizer.weight_decay",
               "optimizer.betas", "optimizer.eps", "optimizer.name", "schedule.warmup_steps", "schedule.warmup_ratio",
               "early_stopping.metric", "early_stopping.patience", "early_stopping.mode", "early_stopping.min_delta"]
            + OptimizerSettings.groupNames.map { "optimizer.groups.\($0)" }
        for key in keys {
            // A section is documented through its keys (`optimizer.lr`, ...).
            XCTAssertTrue(docs.contains("`\(key)`") || docs.contains("`\(key)."), "docs/config.md does not document `\(key)`")
        }
    }

    func testTasksAsListAndComponentShorthands() throws {
        let yaml = """
            plugin_path: plugins
            adapters:
              lora: polyhead.lora
            tasks:
              - name: topic
                type: multi_label
                head: {options: {threshold: 0.4}}
                data: {train: a.csv, dev: a.tsv}
                adapter: lora
              - name: score
                type: regression
                data: {train: b.jsonl}
            training:
              steps: 1000
              sampling: uniform
              schedule: cosine
              loss_weighting: uncertainty
              clip_norm: null
              early_stopping: {metric: score.pearson, patience: 2}
            """
        let config = try RunConfig.parse(yaml: yaml, file: "run.yaml")
        XCTAssertEqual(config.pluginPaths, ["plugins"])
        XCTAssertEqual(config.tasks.map(\.name), ["topic", "score"])
        XCTAssertEqual(config.tasks[0].head.plugin, "polyhead.multi_label_classification")
        XCTAssertEqual(config.tasks[0].head.options["threshold"], .number(0.4))
        XCTAssertEqual(config.tasks[0].metrics, [.microF1, .macroF1])
        XCTAssertEqual(config.tasks[1].metrics, [.pearson, .spearman, .mse])
        XCTAssertEqual(config.adapters.first?.settings.plugin, "polyhead.lora")
        XCTAssertEqual(config.training.length, .steps(1000))
        XCTAssertEqual(config.training.sampling, .uniform)
        XCTAssertEqual(config.training.schedule.kind, .cosine)
        XCTAssertEqual(config.training.lossWeighting.name, "uncertainty")
        XCTAssertNil(config.training.clipNorm)
        XCTAssertEqual(config.training.earlyStopping.metric, "score.pearson")
    }

    func testEarlyStoppingOnAnErrorMetricMinimisesByDefault() throws {
        let yaml = """
            tasks:
              depth:
                type: regression
                data: {train: d.jsonl}
                metrics: [pearson, mae]
            training:
              early_stopping: {metric: depth.mae, patience: 1}
            """
        XCTAssertEqual(try RunConfig.parse(yaml: yaml, file: "run.yaml").training.earlyStopping.mode, .min)
    }

    func testFreeFormOptionsKeepTypesAndOrder() throws {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
                head:
                  plugin: my.head
                  options: {zeta: 1, alpha: "2", beta: [true, null, 1.5e-3], nested: {k: text}}
            """
        let options = try RunConfig.parse(yaml: yaml, file: "run.yaml").tasks[0].head.options
        XCTAssertEqual(options.keys, ["zeta", "alpha", "beta", "nested"])
        XCTAssertEqual(JSONNode.object(options).jsonText, #"{"zeta":1,"alpha":"2","beta":[true,null,0.0015],"nested":{"k":"text"}}"#)
    }

    // MARK: Errors

    func testWrongTypeNamesFileLineAndKeyPath() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            training:
              optimizer:
                lr: fast
            """
        assertConfigError(yaml, equals: #"run.yaml:6: training.optimizer.lr: expected a number, got "fast""#)
    }

    func testQuotedNumberIsNotANumber() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            training:
              batch_size: "32"
            """
        assertConfigError(yaml, equals: #"run.yaml:5: training.batch_size: expected an integer, got "32""#)
    }

    func testUnknownKeySuggestsTheClosestKey() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            training:
              batch_size: 8
              optimiser: {lr: 1.0e-4}
            """
        assertConfigError(yaml, line: 6, keyPath: "training.optimiser", contains: ["unknown key 'optimiser'", "did you mean 'optimizer'?"])
    }

    func testUnknownKeyInsideATask() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
                loss_wieght: 2
            """
        assertConfigError(yaml, line: 4, keyPath: "tasks.t.loss_wieght", contains: ["did you mean 'loss_weight'?"])
    }

    func testUnknownKeyFarFromAnyKnownOneListsTheKnownKeys() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            colour: blue
            """
        assertConfigError(yaml, line: 4, keyPath: "colour", contains: ["unknown key 'colour'", "known keys: model,"])
    }

    func testUnknownValueSuggestsTheClosestValue() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            training:
              sampling: {strategy: temprature, temperature: 3}
            """
        assertConfigError(yaml, line: 5, keyPath: "training.sampling.strategy", contains: ["unknown sampling strategy \"temprature\"", "did you mean 'temperature'?"])
    }

    func testTaskTypeTypo() {
        let yaml = """
            tasks:
              t:
                type: regresion
                data: {train: t.jsonl}
            """
        assertConfigError(yaml, line: 3, keyPath: "tasks.t.type", contains: ["did you mean 'regression'?"])
    }

    func testMissingTrainingFile() {
        let yaml = """
            tasks:
              t:
                data: {dev: t.jsonl}
            """
        assertConfigError(yaml, line: 3, keyPath: "tasks.t.data.train", contains: ["required key is missing"])
    }

    func testUnknownDataExtension() {
        let yaml = """
            tasks:
              t:
                data:
                  train: t.parquet
            """
        assertConfigError(yaml, line: 4, keyPath: "tasks.t.data.train", contains: ["cannot tell the format", ".jsonl, .csv or .tsv"])
    }

    func testUndeclaredRouter() {
        let yaml = """
            routers:
              mmoe: polyhead.mmoe
            tasks:
              t:
                data: {train: t.jsonl}
                router: mmeo
            """
        assertConfigError(yaml, line: 6, keyPath: "tasks.t.router", contains: ["'mmeo' is not declared under 'routers'", "did you mean 'mmoe'?"])
    }

    func testMetricThatDoesNotApply() {
        let yaml = """
            tasks:
              t:
                type: regression
                data: {train: t.jsonl}
                metrics: [pearson, accuracy]
            """
        assertConfigError(yaml, line: 5, keyPath: "tasks.t.metrics[1]", contains: ["metric 'accuracy' does not apply to a regression task"])
    }

    func testErrorMetricCannotBePrimary() {
        let yaml = """
            tasks:
              t:
                type: regression
                data: {train: t.jsonl}
                metrics: [mse, pearson]
            """
        assertConfigError(yaml, line: 5, keyPath: "tasks.t.metrics", contains: ["primary metric", "higher is better"])
    }

    func testStepsAndEpochsAreExclusive() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            training:
              steps: 10
              epochs: 2
            """
        assertConfigError(yaml, line: 5, keyPath: "training.steps", contains: ["both steps and epochs"])
    }

    func testBetasNeedTwoValuesBelowOne() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            training:
              optimizer:
                betas: [0.9, 1.5]
            """
        assertConfigError(yaml, line: 6, keyPath: "training.optimizer.betas[1]", contains: ["expected a number in [0, 1), got 1.5"])
    }

    func testUnknownEarlyStoppingMetric() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            training:
              early_stopping: {metric: t.acuracy}
            """
        assertConfigError(yaml, line: 5, keyPath: "training.early_stopping.metric", contains: ["unknown metric 't.acuracy'", "did you mean 't.accuracy'?"])
    }

    func testUnknownLossWeightingOption() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            training:
              loss_weighting:
                name: uncertainty
                options: {initial_log_varaince: 1}
            """
        assertConfigError(yaml, line: 6, keyPath: "training.loss_weighting", contains: ["unknown option 'initial_log_varaince'", "did you mean 'initial_log_variance'?"])
    }

    func testDuplicateTaskNameInList() {
        let yaml = """
            tasks:
              - name: t
                data: {train: a.jsonl}
              - name: t
                data: {train: b.jsonl}
            """
        assertConfigError(yaml, line: 4, keyPath: "tasks[1].name", contains: ["task 't' is declared twice"])
    }

    func testTaskNameWithADotIsRejected() {
        let yaml = """
            tasks:
              a.b:
                data: {train: a.jsonl}
            """
        assertConfigError(yaml, line: 3, keyPath: "tasks.a.b", contains: ["may only contain letters, digits"])
    }

    func testYAMLSyntaxErrorHasALine() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl
            training:
              steps: 3
            """
        XCTAssertThrowsError(try RunConfig.parse(yaml: yaml, file: "run.yaml")) { error in
            guard let configError = error as? ConfigError else { return XCTFail("expected a ConfigError, got \(error)") }
            XCTAssertTrue(configError.message.hasPrefix("YAML syntax error"), configError.description)
            XCTAssertNotNil(configError.line)
            XCTAssertTrue(configError.description.hasPrefix("run.yaml:"), configError.description)
        }
    }

    func testDuplicateKeyIsAnError() {
        let yaml = """
            tasks:
              t:
                data: {train: t.jsonl}
            max_length: 64
            max_length: 32
            """
        assertConfigError(yaml, line: 4, keyPath: "", contains: ["duplicate key 'max_length'"])
    }

    func testEmptyConfigAndMissingFile() {
        assertConfigError("", equals: "run.yaml: the config is empty; see docs/config.md for a full example")
        XCTAssertThrowsError(try RunConfig.load(file: "/nonexistent/run.yaml")) { error in
            XCTAssertTrue("\(error)".hasPrefix("/nonexistent/run.yaml: cannot read the config file"), "\(error)")
        }
    }

    func testLoadReadsAFile() throws {
        let directory = try DataSideFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("exp.yaml")
        try minimal.write(to: file, atomically: true, encoding: .utf8)
        let config = try RunConfig.load(file: file.path)
        XCTAssertEqual(config.file, file.path)
        XCTAssertEqual(config.output, "runs/exp")
    }

    func testNameSuggestionDistance() {
        XCTAssertEqual(NameSuggestion.editDistance(Array("optimiser"), Array("optimizer")), 1)
        XCTAssertEqual(NameSuggestion.editDistance(Array("ab"), Array("ba")), 1)
        XCTAssertEqual(NameSuggestion.editDistance(Array(""), Array("abc")), 3)
        XCTAssertNil(NameSuggestion.closest(to: "xyz", among: ["model", "output"]))
    }

    // MARK: Helpers

    static func firstYAMLBlock(after heading: String, in markdown: String) -> String? {
        guard let headingRange = markdown.range(of: heading),
              let start = markdown.range(of: "```yaml\n", range: headingRange.upperBound..<markdown.endIndex),
              let end = markdown.range(of: "```", range: start.upperBound..<markdown.endIndex) else { return nil }
        return String(markdown[start.upperBound..<end.lowerBound])
    }

    func assertConfigError(_ yaml: String, equals expected: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try RunConfig.parse(yaml: yaml, file: "run.yaml"), file: file, line: line) { error in
            XCTAssertEqual("\(error)", expected, file: file, line: line)
        }
    }

    func assertConfigError(_ yaml: String, line expectedLine: Int, keyPath: String, contains fragments: [String],
                           file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try RunConfig.parse(yaml: yaml, file: "run.yaml"), file: file, line: line) { error in
            guard let configError = error as? ConfigError else { return XCTFail("expected a ConfigError, got \(error)", file: file, line: line) }
            XCTAssertEqual(configError.file, "run.yaml", file: file, line: line)
            XCTAssertEqual(configError.line, expectedLine, configError.description, file: file, line: line)
            XCTAssertEqual(configError.keyPath, keyPath, configError.description, file: file, line: line)
            for fragment in fragments {
                XCTAssertTrue(configError.description.contains(fragment), "\"\(configError)\" lacks \"\(fragment)\"", file: file, line: line)
            }
        }
    }
}

extension JSONObject {
    var jsonText: String { JSONNode.object(self).jsonText }
}
