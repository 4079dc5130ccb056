namespace Quantize.Benchmarks;

/// <summary>A GEMM shape M x K x N, shown as such in the summary.</summary>
public sealed record GemmShape(int M, int K, int N)
{
    /// <summary>2 x M x K x N: a multiply and an add per term.</summary>
    public double Operations => 2.0 * M * K * N;

    public override string ToString() => $"{M}x{K}x{N}";
}
