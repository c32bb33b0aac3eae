import XCTest
@testable import Training

private struct ScheduleFixture: Decodable {
    struct Schedule: Decodable {
        var kind: String
        var warmup: Int
        var total: Int?
        var cycles: Double?
        var multipliers: [Double]
    }
    var schedules: [Schedule]
}

final class ScheduleTests: XCTestCase {
    /// transformers' schedules read back from LambdaLR after every step (schedules.json).
    func testMatchesTransformers() throws {
        let fixture = try decodeFixture(ScheduleFixture.self, "schedules.json")
        XCTAssertEqual(fixture.schedules.count, 6)
        for item in fixture.schedules {
            let kind = try XCTUnwrap(LearningRateSchedule.Kind(rawValue: item.kind), item.kind)
            let schedule = LearningRateSchedule(kind: kind, warmupSteps: item.warmup, totalSteps: item.total, cosineCycles: item.cycles ?? 0.5)
            XCTAssertNoThrow(try schedule.validate())
            let ours = item.multipliers.indices.map { schedule.multiplier(afterSteps: $0) }
            assertClose(ours, item.multipliers, relative: 1e-12, absolute: 1e-15, "\(item.kind) warmup \(item.warmup) total \(item.total ?? -1)")
        }
    }

    func testWarmupStartsAtZeroAndReachesOne() {
        let schedule = LearningRateSchedule(kind: .linear, warmupSteps: 4, totalSteps: 8)
        XCTAssertEqual(schedule.multiplier(afterSteps: 0), 0)
        XCTAssertEqual(schedule.multiplier(afterSteps: 2), 0.5)
        XCTAssertEqual(schedule.multiplier(afterSteps: 4), 1)
        XCTAssertEqual(schedule.multiplier(afterSteps: 8), 0)
        XCTAssertEqual(schedule.multiplier(afterSteps: 20), 0, "never negative after the end")
    }

    func testRejectsInconsistentSchedules() {
        XCTAssertThrowsError(try LearningRateSchedule(kind: .linear, warmupSteps: 2).validate()) {
            XCTAssertTrue("\($0)".contains("needs total steps"))
        }
        XCTAssertThrowsError(try LearningRateSchedule(kind: .cosine, warmupSteps: 12, totalSteps: 10).validate()) {
            XCTAssertTrue("\($0)".contains("shorten the warmup"))
        }
        XCTAssertThrowsError(try LearningRateSchedule(kind: .constant, warmupSteps: -1).validate())
        XCTAssertNoThrow(try LearningRateSchedule.constant.validate())
    }

    func testDecodesFromConfiguration() throws {
        let json = #"{"kind": "cosine", "warmupSteps": 10, "totalSteps": 100, "cosineCycles": 0.5}"#
        let schedule = try JSONDecoder().decode(LearningRateSchedule.self, from: Data(json.utf8))
        XCTAssertEqual(schedule, LearningRateSchedule(kind: .cosine, warmupSteps: 10, totalSteps: 100))
    }
}
