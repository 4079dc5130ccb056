using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// The int8-activation variant of <see cref="Int4Gemm"/> (ONNX Runtime's MatMulNBits accuracy level 4):
/// each block of A is quantized to int8 with its own scale (symmetric, -127..127), so a block's dot product
/// is an integer one. On AVX2 the nibbles (0..15) are the unsigned operand of <c>vpmaddubsw</c>: a pair of
/// products is at most 2 x 15 x 127, far from saturation, so the integer dot is exact; then
/// <c>C += scaleA[b] x scaleW[n,b] x (q . a - zp x sum(a))</c>.
/// The results differ from the float-activation product by A's rounding to int8 (at most half a step per value).
/// </summary>
public static class Int4GemmInt8Activations
{
    /// <summary>Computes C = A x W^T (+ <paramref name="bias"/>) with A quantized to int8 per block.</summary>
    /// <param name="a">A, M x K row-major.</param>
    /// <param name="rows">M.</param>
    /// <param name="b">The 4-bit weights.</param>
    /// <param name="c">C, M x N row-major; overwritten.</param>
    /// <param name="bias">Empty, or N values.</param>
    /// <param name="degreeOfParallelism">Threads to use; 1 runs on the calling thread only.</param>
    public static void Multiply(ReadOnlySpan<float> a, int rows, PackedInt4Matrix b, Span<float> c, ReadOnlySpan<float> bias = default, int degreeOfParallelism = 1) =>
        Run(a, rows, b, c, bias, degreeOfParallelism, vectorized: true);

    /// <summary>The same product through the scalar twin of the block kernel.</summary>
    internal static void MultiplyScalar(ReadOnlySpan<float> a, int rows, PackedInt4Matrix b, Span<float> c, int degreeOfParallelism = 1) =>
        Run(a, rows, b, c, default, degreeOfParallelism, vectorized: false);

    private static unsafe void Run(ReadOnlySpan<float> a, int rows, PackedInt4Matrix b, Span<float> c, ReadOnlySpan<float> bias, int degreeOfParallelism, bool vectorized)
    {
        int k = b.Depth, n = b.Columns, bs = b.BlockSize, blocks = b.BlocksPerColumn;
        if (a.Length < (long)rows * k) throw new ArgumentException($"A needs {(long)rows * k} values, not {a.Length}.", nameof(a));
        if (c.Length < (long)rows * n) throw new ArgumentException($"C needs {(long)rows * n} values, not {c.Length}.", nameof(c));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"The bias needs {n} values.", nameof(bias));

        int padded = blocks * bs;
        sbyte[] quantized = ArrayPool<sbyte>.Shared.Rent(rows * padded + 64);
        float[] scales = ArrayPool<float>.Shared.Rent(rows * blocks);
        int[] sums = ArrayPool<int>.Shared.Rent(rows * blocks);
        try
        {
            fixed (sbyte* quantizedStart = quantized)
            fixed (float* pas = scales, pws = b.Scales, pzeros = b.ZeroPoints, pc = c)
            fixed (int* psums = sums)
            fixed (byte* pb = b.Data)
            {
                // A's rows from a cache line on, as in Int4Gemm: no 32-byte load straddles two lines.
                int offset = CacheLineStorage.LineOffset(quantizedStart);
                sbyte* pq = quantizedStart + offset;
                for (int r = 0; r < rows; r++)
                    QuantizeRow(a.Slice(r * k, k), quantized.AsSpan(offset + r * padded, padded), scales.AsSpan(r * blocks, blocks), sums.AsSpan(r * blocks, blocks), bs);

                var job = new Job(pq, pas, psums, pb, pws, pzeros, pc, rows, n, bs, blocks, padded, vectorized && Avx2.IsSupported && Fma.IsSupported);
                int parts = Math.Clamp(degreeOfParallelism, 1, Math.Max(1, n / 16));
                if (parts == 1)
                {
                    job.Columns(0, n);
                }
                else
                {
                    IntraOpThreads.For(parts, parts, part =>
                    {
                        var (start, end) = GemmDriver<FloatKernelPortable, float, float, float>.Share(n, parts, part);
                        job.Columns(start, end);
                    });
                }
            }
        }
        finally
        {
            ArrayPool<sbyte>.Shared.Return(quantized);
            ArrayPool<float>.Shared.Return(scales);
            ArrayPool<int>.Shared.Return(sums);
        }

        if (!bias.IsEmpty)
        {
            for (int r = 0; r < rows; r++)
                System.Numerics.Tensors.TensorPrimitives.Add(c.Slice(r * n, n), bias, c.Slice(r * n, n));
        }
    }

    /// <summary>
    /// Quantizes one row of A block by block (scale max|a|/127, round half to even) into the order the
    /// kernel reads: per 32 values (16 for a block of 16), the even K values then the odd ones.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void QuantizeRow(ReadOnlySpan<float> row, Span<sbyte> quantized, Span<float> scales, Span<int> sums, int bs)
    {
        quantized.Clear();
        int chunk = Math.Min(bs, 32);
        for (int block = 0; block < scales.Length; block++)
        {
            int start = block * bs, end = Math.Min(row.Length, start + bs);
            float max = 0;
            for (int k = start; k < end; k++) max = MathF.Max(max, MathF.Abs(row[k]));
            float scale = max > 0 ? max / 127f : 1f;
            scales[block] = scale;
            int sum = 0;
            for (int k = start; k < end; k++)
            {
                int q = (int)Math.Clamp(MathF.Round(row[k] / scale, MidpointRounding.ToEven), -127, 127);
                int within = k - start;
                int chunkStart = within / chunk * chunk, offset = within - chunkStart;
                quantized[start + chunkStart + (offset & 1) * (chunk / 2) + offset / 2] = (sbyte)q;
                sum += q;
            }
            sums[block] = sum;
        }
    }

    private readonly unsafe struct Job(sbyte* quantized, float* aScales, int* aSums, byte* weights, float* wScales, float* zeros, float* c,
        int rows, int n, int bs, int blocks, int padded, bool vectorized)
    {
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Columns(int start, int end)
        {
            int blockBytes = bs / 2;
            for (int column = start; column < end; column++)
            {
                byte* w = weights + (long)column * blocks * blockBytes;
                float* ws = wScales + (long)column * blocks;
                float* zp = zeros + (long)column * blocks;
                for (int r = 0; r < rows; r++)
                {
                    sbyte* aq = quantized + (long)r * padded;
                    float* s = aScales + (long)r * blocks;
                    int* sum = aSums + (long)r * blocks;
                    c[(long)r * n + column] = !vectorized ? DotScalar(aq, s, sum, w, ws, zp, blocks, bs)
                        : bs == 16 ? Dot16(aq, s, sum, w, ws, zp, blocks) : Dot32(aq, s, sum, w, ws, zp, blocks, bs);
                }
            }
        }
    }

    /// <summary>Blocks of 32 or more: per 32 values, one <c>vpmaddubsw</c> of [low | high] nibbles with [even | odd] A.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Dot32(sbyte* a, float* aScales, int* aSums, byte* w, float* wScales, float* zeros, int blocks, int bs)
    {
        var mask = Vector128.Create((byte)0x0F);
        var ones = Vector256.Create((short)1);
        var total = Vector256<float>.Zero;
        float correction = 0;
        for (int block = 0; block < blocks; block++)
        {
            var dot = Vector256<int>.Zero;
            for (int i = 0; i < bs; i += 32)
            {
                var bytes = Vector128.Load(w);
                var low = bytes & mask;
                var high = Sse2.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & mask;
                var q = Vector256.Create(low, high);
                dot = Avx2.Add(dot, Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, Vector256.Load(a)), ones));
                w += 16;
                a += 32;
            }
            float scale = aScales[block] * wScales[block];
            total = Fma.MultiplyAdd(Avx.ConvertToVector256Single(dot), Vector256.Create(scale), total);
            correction += zeros[block] * aSums[block] * scale;
        }
        return Vector256.Sum(total) - correction;
    }

    /// <summary>Blocks of 16: the same with 128-bit vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe float Dot16(sbyte* a, float* aScales, int* aSums, byte* w, float* wScales, float* zeros, int blocks)
    {
        var mask = Vector64.Create((byte)0x0F);
        var ones = Vector128.Create((short)1);
        var total = Vector128<float>.Zero;
        float correction = 0;
        for (int block = 0; block < blocks; block++)
        {
            var bytes = Vector64.Load(w);
            var low = bytes & mask;
            var high = Vector64.ShiftRightLogical(bytes.AsUInt16(), 4).AsByte() & mask;
            var q = Vector128.Create(low, high);
            var dot = Sse2.MultiplyAddAdjacent(Ssse3.MultiplyAddAdjacent(q, Vector128.Load(a)), ones);
            float scale = aScales[block] * wScales[block];
            total = Fma.MultiplyAdd(Sse2.ConvertToVector128Single(dot), Vector128.Create(scale), total);
            correction += zeros[block] * aSums[block] * scale;
            w += 8;
            a += 16;
        }
        return Vector128.Sum(total) - correction;
    }

    /// <summary>The scalar twin: the same integer block dots and the same per-block scaling.</summary>
    private static unsafe float DotScalar(sbyte* a, float* aScales, int* aSums, byte* w, float* wScales, float* zeros, int blocks, int bs)
    {
        int chunk = Math.Min(bs, 32);
        float total = 0, correction = 0;
        for (int block = 0; block < blocks; block++)
        {
            int dot = 0;
            for (int i = 0; i < bs; i += chunk)
            {
                for (int j = 0; j < chunk / 2; j++)
                {
                    byte pair = w[j];
                    dot += (pair & 0x0F) * a[j] + (pair >> 4) * a[chunk / 2 + j];
                }
                w += chunk / 2;
                a += chunk;
            }
            float scale = aScales[block] * wScales[block];
            total = MathF.FusedMultiplyAdd(dot, scale, total);
            correction += zeros[block] * aSums[block] * scale;
        }
        return total - correction;
    }
}
