using BenchmarkDotNet.Running;

namespace Quantize.Benchmarks;

/// <summary>Runs the suites: <c>dotnet run -c Release --project bench/Quantize.Benchmarks -- --filter '*Gemm*'</c>.</summary>
public static class Program
{
    public static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args, BenchmarkConfig.Create());
}
