using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// A float32 B operand (K x N weights) packed once into panels of 16 columns, each panel K rows
/// deep and zero-padded past N, the layout the float micro-kernels stream through.
/// </summary>
public sealed class PackedFloatMatrix
{
    internal const int PanelWidth = 16;

    private PackedFloatMatrix(int depth, int columns, float[] data, int offset = 0)
    {
        Depth = depth;
        Columns = columns;
        Data = data;
        Offset = offset;
    }

    /// <summary>K: the rows of B.</summary>
    public int Depth { get; }

    /// <summary>N: the columns of B (and of C).</summary>
    public int Columns { get; }

    internal float[] Data { get; }

    /// <summary>Where the panels start in <see cref="Data"/>: a 64-byte boundary for large matrices (see <see cref="CacheLineStorage"/>).</summary>
    internal int Offset { get; }


    /// <summary>
    /// Packs B, given row-major as K x N, or as N x K when <paramref name="transposed"/> (ONNX Gemm's
    /// <c>transB</c>, a Linear layer's weight).
    /// </summary>
    public static PackedFloatMatrix Pack(ReadOnlySpan<float> b, int depth, int columns, bool transposed = false)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(depth);
        ArgumentOutOfRangeException.ThrowIfNegative(columns);
        if (b.Length < (long)depth * columns) throw new ArgumentException($"B needs {(long)depth * columns} values, not {b.Length}.", nameof(b));
        int panels = (columns + PanelWidth - 1) / PanelWidth;
        var (data, offset) = CacheLineStorage.Allocate<float>((long)panels * depth * PanelWidth);
        for (int p = 0; p < panels; p++)
        {
            int n0 = p * PanelWidth;
            int width = Math.Min(PanelWidth, columns - n0);
            var panel = data.AsSpan(offset + p * depth * PanelWidth, depth * PanelWidth);
            for (int k = 0; k < depth; k++)
            {
                var row = panel.Slice(k * PanelWidth, width);
                if (transposed)
                {
                    for (int j = 0; j < width; j++) row[j] = b[(n0 + j) * depth + k];
                }
                else
                {
                    b.Slice(k * columns + n0, width).CopyTo(row);
                }
            }
        }
        return new PackedFloatMatrix(depth, columns, data, offset);
    }
}

/// <summary>
/// Single-precision GEMM: <c>C (M x N) = A (M x K) x B (+ bias)</c>, A and C row-major, B packed.
/// A 16 x 16 AVX-512 micro-kernel where the CPU has it, else an AVX2/FMA one of 6 x 16 (12 accumulators), else a
/// portable scalar kernel; all three give identical bits.
/// </summary>
public static class FloatGemm
{
    /// <summary>
    /// The kernel <see cref="Multiply(ReadOnlySpan{float}, int, PackedFloatMatrix, Span{float}, ReadOnlySpan{float}, int)"/>
    /// and <see cref="PackedFloatRows.Pack"/> use: AVX-512 where the CPU has it, else AVX2 + FMA, else the portable kernel.
    /// </summary>
    internal static FloatKernelKind BestKernel =>
        Avx512F.IsSupported ? FloatKernelKind.Avx512 : Fma.IsSupported && Avx2.IsSupported ? FloatKernelKind.Avx2 : FloatKernelKind.Portable;

    /// <summary>Computes C = A x B (+ <paramref name="bias"/> per column).</summary>
    /// <param name="a">A, M x K row-major.</param>
    /// <param name="rows">M.</param>
    /// <param name="b">B, packed.</param>
    /// <param name="c">C, M x N row-major; overwritten.</param>
    /// <param name="bias">Empty, or N values added to every row.</param>
    /// <param name="degreeOfParallelism">Threads to use; 1 runs on the calling thread only.</param>
    public static void Multiply(ReadOnlySpan<float> a, int rows, PackedFloatMatrix b, Span<float> c, ReadOnlySpan<float> bias = default, int degreeOfParallelism = 1) =>
        Multiply(BestKernel, a, rows, b, c, bias, degreeOfParallelism);

    /// <summary>As above on the given kernel (tests compare the kernels through it).</summary>
    internal static unsafe void Multiply(FloatKernelKind kernel, ReadOnlySpan<float> a, int rows, PackedFloatMatrix b, Span<float> c, ReadOnlySpan<float> bias = default, int degreeOfParallelism = 1)
    {
        int k = b.Depth, n = b.Columns;
        if (a.Length < (long)rows * k) throw new ArgumentException($"A needs {(long)rows * k} values, not {a.Length}.", nameof(a));
        if (c.Length < (long)rows * n) throw new ArgumentException($"C needs {(long)rows * n} values, not {c.Length}.", nameof(c));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"The bias needs {n} values, not {bias.Length}.", nameof(bias));
        if (k == 0) c[..(rows * n)].Clear();
        fixed (float* pa = a, data = b.Data, pc = c, pbias = bias)
        {
            Run(kernel, new GemmA(pa, rows, k), data + b.Offset, n, pc, degreeOfParallelism, n, null);
            if (!bias.IsEmpty)
            {
                nint output = (nint)pc, offsets = (nint)pbias;
                ParallelRanges.For(rows, n, degreeOfParallelism, (start, end) =>
                {
                    var add = new ReadOnlySpan<float>((float*)offsets, n);
                    for (int i = start; i < end; i++)
                    {
                        var row = new Span<float>((float*)output + (long)i * n, n);
                        System.Numerics.Tensors.TensorPrimitives.Add(row, add, row);
                    }
                });
            }
        }
    }

    /// <summary>
    /// C (row stride <paramref name="ldc"/>) = A x B with A packed once (<see cref="PackedFloatRows"/>): for a constant
    /// left operand used many times, such as Conv weights against each image's patches.
    /// </summary>
    internal static unsafe void Multiply(PackedFloatRows a, PackedFloatMatrix b, Span<float> c, int ldc, int degreeOfParallelism = 1)
    {
        fixed (float* pb = b.Data) Multiply(a, pb + b.Offset, b.Depth, b.Columns, c, ldc, degreeOfParallelism);
    }

    /// <summary>As above with B's panels at <paramref name="panels"/> (pinned by the caller, ideally on a cache line).</summary>
    /// <remarks><paramref name="shareRows"/>: threads take row blocks rather than panels (see <see cref="GemmDriver{TKernel,TA,TB,TC}.Run"/>).</remarks>
    internal static unsafe void Multiply(PackedFloatRows a, float* panels, int depth, int columns, Span<float> c, int ldc, int degreeOfParallelism = 1,
        bool shareRows = false)
    {
        if (a.Depth != depth) throw new ArgumentException($"A has depth {a.Depth}, B {depth}.", nameof(depth));
        if (c.Length < (long)(a.Rows - 1) * ldc + columns) throw new ArgumentException("C is too short.", nameof(c));
        fixed (float* pa = a.Data, pc = c)
            Run(a.Kernel, new GemmA(null, a.Rows, a.Depth), panels, columns, pc, degreeOfParallelism, ldc, pa, shareRows);
    }

    private static unsafe void Run(FloatKernelKind kernel, GemmA a, float* panels, int n, float* c, int degreeOfParallelism, int ldc, float* prepackedA,
        bool shareRows = false)
    {
        switch (kernel)
        {
            case FloatKernelKind.Avx512: GemmDriver<FloatKernelAvx512, float, float, float>.Run(a, panels, n, c, degreeOfParallelism, ldc, prepackedA, shareRows); break;
            case FloatKernelKind.Avx2: GemmDriver<FloatKernelAvx2, float, float, float>.Run(a, panels, n, c, degreeOfParallelism, ldc, prepackedA, shareRows); break;
            default: GemmDriver<FloatKernelPortable, float, float, float>.Run(a, panels, n, c, degreeOfParallelism, ldc, prepackedA, shareRows); break;
        }
    }
}

/// <summary>The float micro-kernels; each packs A for its own tile, so packed A records which one it was packed for.</summary>
internal enum FloatKernelKind
{
    /// <summary><see cref="FloatKernelPortable"/>: 6 x 16, scalar, the AVX2 kernel's twin.</summary>
    Portable,

    /// <summary><see cref="FloatKernelAvx2"/>: 6 x 16 on AVX2 + FMA.</summary>
    Avx2,

    /// <summary><see cref="FloatKernelAvx512"/>: 16 x 16 on AVX-512.</summary>
    Avx512,
}

/// <summary>A left operand (M x K) packed once for the float kernels, for products that reuse it.</summary>
internal sealed class PackedFloatRows
{
    private PackedFloatRows(int rows, int depth, float[] data, FloatKernelKind kernel)
    {
        Rows = rows;
        Depth = depth;
        Data = data;
        Kernel = kernel;
    }

    public int Rows { get; }

    public int Depth { get; }

    internal float[] Data { get; }

    /// <summary>The kernel whose blocking this was packed for, and so the one that multiplies it.</summary>
    internal FloatKernelKind Kernel { get; }

    public static unsafe PackedFloatRows Pack(ReadOnlySpan<float> a, int rows, int depth, FloatKernelKind? kernel = null)
    {
        var kind = kernel ?? FloatGemm.BestKernel;
        fixed (float* pa = a)
        {
            var view = new GemmA(pa, rows, depth);
            var data = kind switch
            {
                FloatKernelKind.Avx512 => GemmDriver<FloatKernelAvx512, float, float, float>.PrePackA(view),
                FloatKernelKind.Avx2 => GemmDriver<FloatKernelAvx2, float, float, float>.PrePackA(view),
                _ => GemmDriver<FloatKernelPortable, float, float, float>.PrePackA(view),
            };
            return new PackedFloatRows(rows, depth, data, kind);
        }
    }
}

/// <summary>Packs A for the float kernels: per 6-row block, K-major (<c>[k][row]</c>), zero rows past M.</summary>
internal static unsafe class FloatPacking
{
    public const int Rows = 6;

    /// <summary>
    /// Packs rows <c>[row, row + rows)</c>, K values <c>[k0, k0 + kc)</c>. Full 6-row blocks are transposed eight K values
    /// at a time in AVX registers (<see cref="RowBlockTranspose"/>; the scalar loop cost a tenth of a 128 x 1536 x 384 product); the rest, and CPUs
    /// without AVX, take <see cref="PackAScalar"/>, which gives the same bytes.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, float* packed)
    {
        if (!Avx.IsSupported || rows != Rows)
        {
            PackAScalar(a, row, rows, k0, kc, packed);
            return;
        }
        RowBlockTranspose.SixRows((uint*)((float*)a.Data + (long)row * a.Depth + k0), a.Depth, kc, (uint*)packed);
    }

    /// <summary>The scalar twin of <see cref="PackA"/>.</summary>
    public static void PackAScalar(in GemmA a, int row, int rows, int k0, int kc, float* packed)
    {
        float* source = (float*)a.Data;
        int depth = a.Depth;
        for (int r = 0; r < rows; r++)
        {
            float* src = source + (long)(row + r) * depth + k0;
            for (int k = 0; k < kc; k++) packed[k * Rows + r] = src[k];
        }
        for (int r = rows; r < Rows; r++)
        {
            for (int k = 0; k < kc; k++) packed[k * Rows + r] = 0f;
        }
    }
}

/// <summary>6 x 16 float micro-kernel on AVX2 + FMA: two B vectors, six broadcasts, twelve accumulators per K step.</summary>
internal readonly unsafe struct FloatKernelAvx2 : IGemmKernel<float, float, float>
{
    public static int Rows => FloatPacking.Rows;
    public static int Columns => PackedFloatMatrix.PanelWidth;
    public static int KStep => 1;
    public static int KBlock => 256;
    public static int MBlock => 120;
    public static int PanelStepLength => PackedFloatMatrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => kc * FloatPacking.Rows;
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, float* packed) => FloatPacking.PackA(a, row, rows, k0, kc, packed);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Multiply(float* a, float* b, int kc, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        if (columns <= 8)
        {
            // A panel's last few columns (a 7 x 7 map has 49 pixels: 3 panels and 1 column): half the multiply-adds.
            MultiplyHalf(a, b, kc, c, ldc, accumulate, rows, columns);
            return;
        }
        if (rows == 6 && columns == 16)
        {
            MultiplyFull(a, b, kc, c, ldc, accumulate);
            return;
        }
        MultiplyPartial(a, b, kc, c, ldc, accumulate, rows, columns);
    }

    /// <summary>
    /// The whole 6 x 16 tile, in a method of its own: together with the partial tiles' stack buffer, the JIT kept the twelve
    /// accumulators in registers only when dynamic PGO had marked the K loop hot (with <c>DOTNET_TieredPGO=0</c> MiniLM's
    /// float model took 81 ms instead of 36 on AVX2), as it did in <see cref="FloatKernelAvx512"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static void MultiplyFull(float* a, float* b, int kc, float* c, int ldc, bool accumulate)
    {
        Vector256<float> c00 = default, c01 = default, c10 = default, c11 = default, c20 = default, c21 = default;
        Vector256<float> c30 = default, c31 = default, c40 = default, c41 = default, c50 = default, c51 = default;
        for (int k = 0; k < kc; k++)
        {
            var b0 = Avx.LoadVector256(b);
            var b1 = Avx.LoadVector256(b + 8);
            var ak = Avx.BroadcastScalarToVector256(a);
            c00 = Fma.MultiplyAdd(ak, b0, c00);
            c01 = Fma.MultiplyAdd(ak, b1, c01);
            ak = Avx.BroadcastScalarToVector256(a + 1);
            c10 = Fma.MultiplyAdd(ak, b0, c10);
            c11 = Fma.MultiplyAdd(ak, b1, c11);
            ak = Avx.BroadcastScalarToVector256(a + 2);
            c20 = Fma.MultiplyAdd(ak, b0, c20);
            c21 = Fma.MultiplyAdd(ak, b1, c21);
            ak = Avx.BroadcastScalarToVector256(a + 3);
            c30 = Fma.MultiplyAdd(ak, b0, c30);
            c31 = Fma.MultiplyAdd(ak, b1, c31);
            ak = Avx.BroadcastScalarToVector256(a + 4);
            c40 = Fma.MultiplyAdd(ak, b0, c40);
            c41 = Fma.MultiplyAdd(ak, b1, c41);
            ak = Avx.BroadcastScalarToVector256(a + 5);
            c50 = Fma.MultiplyAdd(ak, b0, c50);
            c51 = Fma.MultiplyAdd(ak, b1, c51);
            a += 6;
            b += 16;
        }

        Store(c, c00, c01, accumulate);
        Store(c + ldc, c10, c11, accumulate);
        Store(c + 2 * ldc, c20, c21, accumulate);
        Store(c + 3 * ldc, c30, c31, accumulate);
        Store(c + 4 * ldc, c40, c41, accumulate);
        Store(c + 5 * ldc, c50, c51, accumulate);
    }

    /// <summary>A tile short of rows or columns: the full tile into a stack buffer, then the part that exists.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization | MethodImplOptions.NoInlining)]
    private static void MultiplyPartial(float* a, float* b, int kc, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        float* tile = stackalloc float[6 * 16];
        MultiplyFull(a, b, kc, tile, 16, accumulate: false);
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < columns; j++)
                c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r * 16 + j] : tile[r * 16 + j];
        }
    }

    /// <summary>The 6 x 8 left half of the tile: the same multiply-adds, in the same order, as the full kernel's first eight columns.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void MultiplyHalf(float* a, float* b, int kc, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        Vector256<float> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        for (int k = 0; k < kc; k++)
        {
            var b0 = Avx.LoadVector256(b);
            c0 = Fma.MultiplyAdd(Avx.BroadcastScalarToVector256(a), b0, c0);
            c1 = Fma.MultiplyAdd(Avx.BroadcastScalarToVector256(a + 1), b0, c1);
            c2 = Fma.MultiplyAdd(Avx.BroadcastScalarToVector256(a + 2), b0, c2);
            c3 = Fma.MultiplyAdd(Avx.BroadcastScalarToVector256(a + 3), b0, c3);
            c4 = Fma.MultiplyAdd(Avx.BroadcastScalarToVector256(a + 4), b0, c4);
            c5 = Fma.MultiplyAdd(Avx.BroadcastScalarToVector256(a + 5), b0, c5);
            a += 6;
            b += 16;
        }
        float* tile = stackalloc float[6 * 8];
        Avx.Store(tile, c0); Avx.Store(tile + 8, c1); Avx.Store(tile + 16, c2);
        Avx.Store(tile + 24, c3); Avx.Store(tile + 32, c4); Avx.Store(tile + 40, c5);
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < columns; j++)
                c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r * 8 + j] : tile[r * 8 + j];
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector256<float> lo, Vector256<float> hi, bool accumulate)
    {
        if (accumulate)
        {
            lo = Avx.Add(lo, Avx.LoadVector256(c));
            hi = Avx.Add(hi, Avx.LoadVector256(c + 8));
        }
        Avx.Store(c, lo);
        Avx.Store(c + 8, hi);
    }
}

/// <summary>The portable float micro-kernel: the same tile and packing as <see cref="FloatKernelAvx2"/>, in scalar code (the twin the tests compare against).</summary>
internal readonly unsafe struct FloatKernelPortable : IGemmKernel<float, float, float>
{
    public static int Rows => FloatPacking.Rows;
    public static int Columns => PackedFloatMatrix.PanelWidth;
    public static int KStep => 1;
    public static int KBlock => 256;
    public static int MBlock => 120;
    public static int PanelStepLength => PackedFloatMatrix.PanelWidth;
    public static int PackedARowBlockLength(int kc) => kc * FloatPacking.Rows;
    public static void PackA(in GemmA a, int row, int rows, int k0, int kc, float* packed) => FloatPacking.PackA(a, row, rows, k0, kc, packed);

    public static void Multiply(float* a, float* b, int kc, float* c, int ldc, bool accumulate, int rows, int columns)
    {
        float* tile = stackalloc float[6 * 16];
        new Span<float>(tile, 6 * 16).Clear();
        for (int k = 0; k < kc; k++)
        {
            for (int r = 0; r < 6; r++)
            {
                float ar = a[k * 6 + r];
                for (int j = 0; j < 16; j++) tile[r * 16 + j] = MathF.FusedMultiplyAdd(ar, b[k * 16 + j], tile[r * 16 + j]);
            }
        }
        for (int r = 0; r < rows; r++)
        {
            for (int j = 0; j < columns; j++)
                c[r * ldc + j] = accumulate ? c[r * ldc + j] + tile[r * 16 + j] : tile[r * 16 + j];
        }
    }
}
