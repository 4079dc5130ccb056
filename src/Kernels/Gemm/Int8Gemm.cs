using System.Buffers;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Gemm;

/// <summary>
/// 8-bit integer GEMM in gemmlowp's three stages: B packed once (<see cref="PackedInt8Matrix"/>), the
/// kernel computing <c>(A - zpA) x B</c> in exact int32, and an output stage that subtracts B's zero
/// points (<c>zpB[n] x rowsum(A - zpA)</c>) and then yields int32 (MatMulInteger), float with per-column
/// scales and bias (the dynamic-quantization pattern), or requantized 8-bit values (QLinearMatMul).
/// <para>
/// Operand ranges: any uint8 or int8 A with any zero point, any uint8 or int8 B with any zero points.
/// Results are exact while <c>K x 255 x 255</c> fits int32 (K up to 33,000).
/// </para>
/// </summary>
public static class Int8Gemm
{
    private static readonly QuantizedRange SevenBits = new(0, 127);
    private static readonly QuantizedRange EightBits = new(0, 255);

    /// <summary>C (int32, M x N) = (A - zpA) x (B - zpB), exactly (ONNX MatMulInteger).</summary>
    public static void Multiply(ReadOnlySpan<byte> a, int rows, int zeroPointA, PackedInt8Matrix b, Span<int> c, int degreeOfParallelism = 1) =>
        MultiplyInt32(a, rows, zeroPointA, signedA: false, b, c, degreeOfParallelism);

    /// <summary>C (int32, M x N) = (A - zpA) x (B - zpB) for int8 A, exactly.</summary>
    public static void Multiply(ReadOnlySpan<sbyte> a, int rows, int zeroPointA, PackedInt8Matrix b, Span<int> c, int degreeOfParallelism = 1) =>
        MultiplyInt32(MemoryMarshal.AsBytes(a), rows, zeroPointA, signedA: true, b, c, degreeOfParallelism);

    /// <summary>
    /// C (float) = scaleA x scaleB[n] x ((A - zpA) x (B - zpB)) + bias[n]: MatMulInteger followed by Cast,
    /// Mul by the scales and Add of the bias, in one pass over C.
    /// </summary>
    /// <param name="a">A, M x K row-major uint8.</param>
    /// <param name="rows">M.</param>
    /// <param name="zeroPointA">A's zero point.</param>
    /// <param name="scaleA">A's scale.</param>
    /// <param name="b">B, packed, with its zero points.</param>
    /// <param name="scaleB">One scale, or one per column.</param>
    /// <param name="bias">Empty, or one value per column.</param>
    /// <param name="c">C, M x N row-major; overwritten.</param>
    /// <param name="degreeOfParallelism">Threads to use; 1 runs on the calling thread only.</param>
    public static void MultiplyToFloat(ReadOnlySpan<byte> a, int rows, int zeroPointA, float scaleA, PackedInt8Matrix b,
        ReadOnlySpan<float> scaleB, ReadOnlySpan<float> bias, Span<float> c, int degreeOfParallelism = 1)
    {
        int n = b.Columns;
        CheckPerColumn(scaleB, n, nameof(scaleB), allowEmpty: false);
        CheckPerColumn(bias, n, nameof(bias), allowEmpty: true);
        if (c.Length < (long)rows * n) throw new ArgumentException($"C needs {(long)rows * n} values, not {c.Length}.", nameof(c));
        if (Jit.Int8VnniKernels.IsSupported && b.Format == Int8PackFormat.Quads && b.Correction is null && b.Depth > 0)
        {
            // The VNNI kernels apply the zero points, scales and bias to each tile while it is in registers: no int32 pass.
            if (a.Length < (long)rows * b.Depth) throw new ArgumentException($"A needs {(long)rows * b.Depth} values, not {a.Length}.", nameof(a));
            var terms = Int8OutputStage.VnniTerms(Jit.Int8VnniStage.Float, a, rows, b.Depth, zeroPointA, signedA: false, b, scaleA, scaleB, bias);
            RunVnni(a, rows, zeroPointA, signedA: false, b, MemoryMarshal.Cast<float, int>(c), degreeOfParallelism, terms);
            return;
        }
        int[] raw = ArrayPool<int>.Shared.Rent(rows * n);
        try
        {
            var accumulators = raw.AsSpan(0, rows * n);
            // Without sparse corrections (and off the ARM dot-product kernel, which shifts A), the zero points are applied in
            // the float pass itself: the same integer additions, one pass over C instead of two.
            bool together = b.Correction is null && !Int8QuadKernelArmDot.IsSupported;
            MultiplyInt32(a, rows, zeroPointA, signedA: false, b, accumulators, degreeOfParallelism, zeroPoints: !together);
            if (together) Int8OutputStage.ToFloatWithZeroPoints(accumulators, a, rows, b.Depth, zeroPointA, b, scaleA, scaleB, bias, c, degreeOfParallelism);
            else Int8OutputStage.ToFloat(accumulators, rows, n, scaleA, scaleB, bias, c, degreeOfParallelism);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(raw);
        }
    }

    /// <summary>
    /// Float A quantized on the fly as ONNX DynamicQuantizeLinear does (uint8, range including 0), then
    /// <see cref="MultiplyToFloat"/>: the DynamicQuantizeLinear + MatMulInteger + Cast + Mul (+ Add) pattern in one call.
    /// </summary>
    public static void MultiplyDynamic(ReadOnlySpan<float> a, int rows, PackedInt8Matrix b, ReadOnlySpan<float> scaleB, ReadOnlySpan<float> bias,
        Span<float> c, int degreeOfParallelism = 1)
    {
        int count = rows * b.Depth;
        if (a.Length < count) throw new ArgumentException($"A needs {count} values, not {a.Length}.", nameof(a));
        byte[] quantized = ArrayPool<byte>.Shared.Rent(count);
        try
        {
            // Weights packed for 7-bit activations get them: A over its range into 0..127 instead of 0..255.
            QuantizationParameters parameters;
            unsafe
            {
                fixed (float* pa = a)
                fixed (byte* pq = quantized)
                    parameters = DynamicQuantizeLinear.Quantize(pa, pq, count, b.ForSevenBitActivations ? SevenBits : EightBits, degreeOfParallelism);
            }
            MultiplyToFloat(quantized.AsSpan(0, count), rows, parameters.ZeroPoint, parameters.Scale, b, scaleB, bias, c, degreeOfParallelism);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(quantized);
        }
    }

    /// <summary>
    /// C (8-bit) = saturate(zpC + multiplier[n] x ((A - zpA) x (B - zpB))) with gemmlowp's fixed-point
    /// multipliers <c>scaleA x scaleB[n] / scaleC</c> (QLinearMatMul). An int32 bias, when given, is
    /// added to the accumulators first (QLinearConv).
    /// </summary>
    public static void MultiplyRequantize(ReadOnlySpan<byte> a, int rows, int zeroPointA, PackedInt8Matrix b, ReadOnlySpan<FixedPointMultiplier> multipliers,
        ReadOnlySpan<int> bias, int zeroPointC, QuantizedRange rangeC, Span<byte> c, int degreeOfParallelism = 1)
    {
        int n = b.Columns;
        if (multipliers.Length != 1 && multipliers.Length != n) throw new ArgumentException($"Give one multiplier or {n}.", nameof(multipliers));
        if (!bias.IsEmpty && bias.Length != n) throw new ArgumentException($"The bias needs {n} values.", nameof(bias));
        if (c.Length < (long)rows * n) throw new ArgumentException($"C needs {(long)rows * n} values, not {c.Length}.", nameof(c));
        int[] raw = ArrayPool<int>.Shared.Rent(rows * n);
        try
        {
            var accumulators = raw.AsSpan(0, rows * n);
            MultiplyInt32(a, rows, zeroPointA, signedA: false, b, accumulators, degreeOfParallelism);
            Int8OutputStage.Requantize(accumulators, rows, n, multipliers, bias, zeroPointC, rangeC, c);
        }
        finally
        {
            ArrayPool<int>.Shared.Return(raw);
        }
    }

    /// <summary>The float64-free scalar reference: a plain triple loop in 64-bit integers.</summary>
    internal static void MultiplyReference(ReadOnlySpan<byte> a, bool signedA, int rows, int depth, int zeroPointA,
        ReadOnlySpan<byte> b, bool signedB, int columns, ReadOnlySpan<int> zeroPointsB, Span<int> c)
    {
        for (int m = 0; m < rows; m++)
        {
            for (int n = 0; n < columns; n++)
            {
                long sum = 0;
                int zb = zeroPointsB.Length == 1 ? zeroPointsB[0] : zeroPointsB[n];
                for (int k = 0; k < depth; k++)
                {
                    int av = signedA ? (sbyte)a[m * depth + k] : a[m * depth + k];
                    int bv = signedB ? (sbyte)b[k * columns + n] : b[k * columns + n];
                    sum += (long)(av - zeroPointA) * (bv - zb);
                }
                c[m * columns + n] = (int)sum;
            }
        }
    }

    /// <summary>The int32 stage; <paramref name="kernel"/> forces a scalar twin (for tests).</summary>
    internal static unsafe void MultiplyInt32(ReadOnlySpan<byte> a, int rows, int zeroPointA, bool signedA, PackedInt8Matrix b, Span<int> c,
        int degreeOfParallelism, Int8KernelChoice kernel = Int8KernelChoice.Native, bool zeroPoints = true)
    {
        int k = b.Depth, n = b.Columns;
        if (a.Length < (long)rows * k) throw new ArgumentException($"A needs {(long)rows * k} values, not {a.Length}.", nameof(a));
        if (c.Length < (long)rows * n) throw new ArgumentException($"C needs {(long)rows * n} values, not {c.Length}.", nameof(c));
        if (k == 0)
        {
            c[..(rows * n)].Clear();
            return;
        }
        int shiftA = 0;
        fixed (byte* pa = a, data = b.Data)
        fixed (int* pc = c)
        {
            byte* pb = data + b.Offset;
            var view = new GemmA(pa, rows, k, zeroPointA, signedA);
            bool native = kernel == Int8KernelChoice.Native;
            bool avx2 = (native || kernel == Int8KernelChoice.Avx2) && Avx2.IsSupported;
            if (b.Format == Int8PackFormat.Quads)
            {
                if (native && Jit.Int8VnniKernels.IsSupported)
                {
                    // The kernels apply the zero points in registers when there are no corrections to add afterwards.
                    var terms = zeroPoints && b.Correction is null ? Int8OutputStage.VnniTerms(Jit.Int8VnniStage.Int32, a, rows, k, zeroPointA, signedA, b) : null;
                    Jit.Int8VnniGemm.Run(view, pb, n, pc, degreeOfParallelism, terms);
                    if (terms is not null) return;
                }
                else if (native && Int8QuadKernelVnni.IsSupported)
                {
                    GemmDriver<Int8QuadKernelVnni, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
                }
                else if ((native && Int8QuadKernelArmDot.IsSupported) || kernel == Int8KernelChoice.ScalarTwinOfArmDot)
                {
                    shiftA = 128;
                    if (native) GemmDriver<Int8QuadKernelArmDot, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
                    else GemmDriver<Int8QuadKernelPortable<ShiftBy128>, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
                }
                else if (avx2 && b.SaturationSafe)
                {
                    GemmDriver<Int8QuadKernelAvx2, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
                }
                else if (avx2 && b.SplitsActivations)
                {
                    Int8SplitActivationGemm.Run(view, pb, n, pc, degreeOfParallelism);
                }
                else
                {
                    GemmDriver<Int8QuadKernelPortable<NoShift>, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
                }
            }
            else if (avx2)
            {
                if (b.Signed) GemmDriver<Int8KernelAvx2Signed, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
                else GemmDriver<Int8KernelAvx2Unsigned, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
            }
            else if (native && AdvSimd.Arm64.IsSupported)
            {
                if (b.Signed) GemmDriver<Int8PairKernelArm<SignExtend>, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
                else GemmDriver<Int8PairKernelArm<ZeroExtend>, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
            }
            else
            {
                if (b.Signed) GemmDriver<Int8KernelPortable<SignExtend>, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
                else GemmDriver<Int8KernelPortable<ZeroExtend>, int, byte, int>.Run(view, pb, n, pc, degreeOfParallelism);
            }
        }
        if (zeroPoints) Int8OutputStage.ApplyZeroPointsAndCorrections(c, a, rows, k, zeroPointA, signedA, b, shiftA, degreeOfParallelism);
    }

    private static unsafe void RunVnni(ReadOnlySpan<byte> a, int rows, int zeroPointA, bool signedA, PackedInt8Matrix b, Span<int> c, int degreeOfParallelism,
        Jit.Int8VnniTerms terms)
    {
        fixed (byte* pa = a, data = b.Data)
        fixed (int* pc = c)
            Jit.Int8VnniGemm.Run(new GemmA(pa, rows, b.Depth, zeroPointA, signedA), data + b.Offset, b.Columns, pc, degreeOfParallelism, terms);
    }

    private static void CheckPerColumn(ReadOnlySpan<float> values, int n, string name, bool allowEmpty)
    {
        if (values.IsEmpty && allowEmpty) return;
        if (values.Length != 1 && values.Length != n) throw new ArgumentException($"Give one value or {n}, not {values.Length}.", name);
    }
}

/// <summary>Which int8 kernel runs: the CPU's own, or a scalar twin (tests run the twins of kernels this CPU lacks).</summary>
internal enum Int8KernelChoice
{
    /// <summary>The fastest kernel for the layout on this CPU.</summary>
    Native,

    /// <summary>The scalar twin of the layout's x86 kernels (and of the ARM Pairs16 kernel).</summary>
    ScalarTwin,

    /// <summary>The AVX2 kernels even on a CPU with VNNI (the scalar twin where AVX2 cannot run the layout exactly).</summary>
    Avx2,

    /// <summary>The scalar twin of the ARM dot-product kernel (A shifted to int8).</summary>
    ScalarTwinOfArmDot,
}
