import CoreMetrics
import Prometheus

/// A swift-metrics factory over one server's Prometheus registry that gives
/// each metric the help text and buckets of `MetricCatalog`.
///
/// swift-prometheus' own `PrometheusMetricsFactory` registers every metric
/// with an empty help text, and the registry refuses (fatally) one name with
/// two help texts: going through the catalog for every metric, whoever makes
/// it, keeps them equal and gives the storage engine's metrics HELP lines.
struct CatalogMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    private func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: MetricCatalog.byName[name]?.help ?? "")
    }

    private func buckets(_ name: String, default fallback: [Double]) -> [Double] {
        let listed = MetricCatalog.byName[name]?.buckets ?? []
        return listed.isEmpty ? fallback : listed
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(descriptor: descriptor(label), labels: dimensions)
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(descriptor: descriptor(label), labels: dimensions) }
        return registry.makeValueHistogram(
            descriptor: descriptor(label), labels: dimensions, buckets: buckets(label, default: MetricCatalog.groupSizeBuckets))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(descriptor: descriptor(label), labels: dimensions)
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let seconds = buckets(label, default: MetricCatalog.latencyBuckets)
        return registry.makeDurationHistogram(
            descriptor: descriptor(label), labels: dimensions,
            buckets: seconds.map { Duration.nanoseconds(Int64(($0 * 1_000_000_000).rounded())) })
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let counter = handler as? Prometheus.Counter { registry.unregisterCounter(counter) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
        if let histogram = handler as? ValueHistogram { registry.unregisterValueHistogram(histogram) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let gauge = handler as? Prometheus.Gauge { registry.unregisterGauge(gauge) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let histogram = handler as? DurationHistogram { registry.unregisterDurationHistogram(histogram) }
    }
}
