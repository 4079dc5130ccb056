using System.Runtime.CompilerServices;
using Quantize.Kernels.Gemm;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// <see cref="ConvolutionLowering"/> for 8-bit images: NHWC transposes, patch rows (taps outer, channels inner)
/// whose padded taps hold the input's zero point (so they add nothing to <c>sum (x - zx)(w - zw)</c>), and the
/// weights packed for <see cref="Int8Gemm"/> in the same tap-major order.
/// </summary>
internal static class ByteConvolutionLowering
{
    /// <summary>
    /// Packs group <paramref name="group"/> of 8-bit Conv weights W [M, Cg, taps] as the GEMM's B: K = taps x Cg
    /// (tap-major, as <see cref="ConvolutionLowering.BuildPatches{T}"/> lays out a row), Mg columns, with the group's zero points;
    /// for activations mostly below 128 when <c>smallActivations</c> (see <see cref="SmallActivations"/>).
    /// </summary>
    public static PackedInt8Matrix PackWeights(ReadOnlySpan<byte> w, bool signed, int group, int outputsPerGroup, int channelsPerGroup, int taps, int[] zeroPoints,
        bool smallActivations = false)
    {
        int k = taps * channelsPerGroup;
        var rows = new byte[outputsPerGroup * k];
        for (int m = 0; m < outputsPerGroup; m++)
        {
            var source = w.Slice((group * outputsPerGroup + m) * k, k);
            var target = rows.AsSpan(m * k, k);
            for (int c = 0; c < channelsPerGroup; c++)
            {
                for (int t = 0; t < taps; t++) target[t * channelsPerGroup + c] = source[c * taps + t];
            }
        }
        int[] zps = zeroPoints.Length switch
        {
            0 => [0],
            1 => [zeroPoints[0]],
            _ => zeroPoints.AsSpan(group * outputsPerGroup, outputsPerGroup).ToArray(),
        };
        if (smallActivations) return PackedInt8Matrix.PackForMostlySmallActivations(rows, k, outputsPerGroup, zps, signed, transposed: true);
        return signed
            ? PackedInt8Matrix.Pack(System.Runtime.InteropServices.MemoryMarshal.Cast<byte, sbyte>(rows), k, outputsPerGroup, zps, transposed: true)
            : PackedInt8Matrix.Pack(rows, k, outputsPerGroup, zps, transposed: true);
    }

    /// <summary>
    /// Whether 8-bit activations with this zero point are mostly below 128: uint8 with a zero point in the lowest quarter,
    /// as calibrated ReLU outputs are (in ResNet18 under 0.2% of them exceed 127). Only a guess at load that picks the
    /// weights' layout (<see cref="PackedInt8Matrix.PackForMostlySmallActivations"/>); results are exact either way.
    /// </summary>
    public static bool SmallActivations(int zeroPoint, TensorElementType? type) => type != TensorElementType.Int8 && zeroPoint is >= 0 and < 64;

    /// <summary>
    /// One depthwise plane: <c>acc[o] = sum over the window's taps inside the image of (x - zx)(w[t] - zw)</c>
    /// (taps in the padding would add <c>(zx - zx) x ...</c> = 0, so they are skipped).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DepthwisePlane(WindowGeometry g, ReadOnlySpan<byte> source, bool signed, int zeroPoint, ReadOnlySpan<int> kernel, Span<int> acc)
    {
        int inH = g.Input[1], inW = g.Input[2], outD = g.Output[0], outH = g.Output[1], outW = g.Output[2];
        int kH = g.Kernel[1], kW = g.Kernel[2];
        int o = 0;
        for (int od = 0; od < outD; od++)
        {
            int fd = g.FirstTap[0][od], ed = g.EndTap[0][od];
            int d0 = od * g.Stride[0] - g.PadBegin[0];
            for (int oh = 0; oh < outH; oh++)
            {
                int fh = g.FirstTap[1][oh], eh = g.EndTap[1][oh];
                int h0 = oh * g.Stride[1] - g.PadBegin[1];
                for (int ow = 0; ow < outW; ow++, o++)
                {
                    int fw = g.FirstTap[2][ow], ew = g.EndTap[2][ow];
                    int w0 = ow * g.Stride[2] - g.PadBegin[2];
                    int sum = 0;
                    for (int kd = fd; kd < ed; kd++)
                    {
                        int id = d0 + kd * g.Dilation[0];
                        for (int kh = fh; kh < eh; kh++)
                        {
                            int line = (id * inH + h0 + kh * g.Dilation[1]) * inW + w0;
                            int tap = (kd * kH + kh) * kW;
                            for (int kw = fw; kw < ew; kw++)
                            {
                                byte raw = source[line + kw * g.Dilation[2]];
                                sum += ((signed ? (sbyte)raw : raw) - zeroPoint) * kernel[tap + kw];
                            }
                        }
                    }
                    acc[o] = sum;
                }
            }
        }
    }
}
