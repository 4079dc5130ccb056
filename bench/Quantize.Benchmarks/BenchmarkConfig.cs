using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;

namespace Quantize.Benchmarks;

/// <summary>
/// One configuration for every suite: medians and ratios to the baseline (our fp32) measured in the
/// same run, plus throughput. 40 warm-up runs let .NET's tiered JIT finish with the library code the kernels
/// call (TensorPrimitives tiers up after about 30 calls); 15 measured runs keep a full run within minutes.
/// </summary>
public static class BenchmarkConfig
{
    public static IConfig Create() => DefaultConfig.Instance
        .AddJob(Job.Default.WithWarmupCount(40).WithIterationCount(15).WithInvocationCount(1).WithUnrollFactor(1))
        .AddColumn(StatisticColumn.Median, StatisticColumn.P90, new ThroughputColumn())
        .HideColumns(Column.Error, Column.StdDev)
        .WithSummaryStyle(SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend))
        .WithOptions(ConfigOptions.JoinSummary);
}

/// <summary>GOP/s from the benchmark's <c>Operations</c> parameter (2 x M x K x N) and its median time.</summary>
public sealed class ThroughputColumn : IColumn
{
    public string Id => nameof(ThroughputColumn);
    public string ColumnName => "GOP/s";
    public bool AlwaysShow => true;
    public ColumnCategory Category => ColumnCategory.Custom;
    public int PriorityInCategory => 0;
    public bool IsNumeric => true;
    public UnitType UnitType => UnitType.Dimensionless;
    public string Legend => "Giga-operations per second (2 x M x K x N / median time)";
    public bool IsAvailable(Summary summary) => true;
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase)
    {
        var report = summary[benchmarkCase];
        var shape = benchmarkCase.Parameters.Items.FirstOrDefault(p => p.Value is GemmShape)?.Value as GemmShape;
        if (report?.ResultStatistics is null || shape is null) return "-";
        return (shape.Operations / report.ResultStatistics.Median).ToString("F1"); // ns -> GOP/s
    }

    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style) => GetValue(summary, benchmarkCase);
}
