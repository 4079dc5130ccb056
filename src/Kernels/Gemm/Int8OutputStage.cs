using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Quantize.Kernels.Quantization;

namespace Quantize.Kernels.Gemm;

/// <summary>The output stages of <see cref="Int8Gemm"/>, each one pass over the int32 accumulators.</summary>
internal static class Int8OutputStage
{
    /// <summary>
    /// The kernel computed <c>(A - zpA) x B</c>; this subtracts <c>zpB[n] x sum_k (A[m,k] - zpA)</c> so that
    /// C holds <c>(A - zpA) x (B - zpB)</c>.
    /// </summary>
    public static void SubtractZeroPointsB(Span<int> c, ReadOnlySpan<byte> a, int rows, int depth, int zeroPointA, bool signedA, PackedInt8Matrix b)
    {
        int n = b.Columns;
        bool any = false;
        foreach (int zp in b.ZeroPoints) any |= zp != 0;
        if (!any) return;
        var zeroPoints = new int[n];
        for (int j = 0; j < n; j++) zeroPoints[j] = b.ZeroPoint(j);
        for (int m = 0; m < rows; m++)
        {
            var row = a.Slice(m * depth, depth);
            int sum = 0;
            if (signedA)
            {
                foreach (sbyte v in MemoryMarshal.Cast<byte, sbyte>(row)) sum += v;
            }
            else
            {
                foreach (byte v in row) sum += v;
            }
            sum -= zeroPointA * depth;
            var cRow = c.Slice(m * n, n);
            for (int j = 0; j < n; j++) cRow[j] -= zeroPoints[j] * sum;
        }
    }

    /// <summary>C = float(acc) x (scaleA x scaleB[n]) + bias[n].</summary>
    public static void ToFloat(ReadOnlySpan<int> accumulators, int rows, int n, float scaleA, ReadOnlySpan<float> scaleB, ReadOnlySpan<float> bias, Span<float> c)
    {
        var scales = new float[n];
        var offsets = new float[n];
        for (int j = 0; j < n; j++)
        {
            scales[j] = scaleA * (scaleB.Length == 1 ? scaleB[0] : scaleB[j]);
            offsets[j] = bias.IsEmpty ? 0f : bias.Length == 1 ? bias[0] : bias[j];
        }
        for (int m = 0; m < rows; m++)
        {
            var acc = accumulators.Slice(m * n, n);
            var output = c.Slice(m * n, n);
            int j = 0;
            if (Vector256.IsHardwareAccelerated)
            {
                ref int accRef = ref MemoryMarshal.GetReference(acc);
                ref float outRef = ref MemoryMarshal.GetReference(output);
                for (; j + 8 <= n; j += 8)
                {
                    var value = Vector256.ConvertToSingle(Vector256.LoadUnsafe(ref accRef, (nuint)j)) * Vector256.LoadUnsafe(ref scales[0], (nuint)j)
                        + Vector256.LoadUnsafe(ref offsets[0], (nuint)j);
                    value.StoreUnsafe(ref outRef, (nuint)j);
                }
            }
            for (; j < n; j++) output[j] = acc[j] * scales[j] + offsets[j];
        }
    }

    /// <summary>C = saturate(zpC + multiplier[n](acc + bias[n])).</summary>
    public static void Requantize(ReadOnlySpan<int> accumulators, int rows, int n, ReadOnlySpan<FixedPointMultiplier> multipliers, ReadOnlySpan<int> bias,
        int zeroPointC, QuantizedRange range, Span<byte> c)
    {
        for (int m = 0; m < rows; m++)
        {
            for (int j = 0; j < n; j++)
            {
                int acc = accumulators[m * n + j] + (bias.IsEmpty ? 0 : bias[j]);
                var multiplier = multipliers.Length == 1 ? multipliers[0] : multipliers[j];
                int value = Math.Clamp(zeroPointC + multiplier.Apply(acc), range.Min, range.Max);
                c[m * n + j] = (byte)value; // int8 results keep their two's-complement byte
            }
        }
    }
}
