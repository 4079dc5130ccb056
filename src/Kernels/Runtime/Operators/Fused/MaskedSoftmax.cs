using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// The attention scores' softmax with its scaling and mask folded in (see <see cref="Planning.MaskedSoftmaxFusion"/>):
/// <c>y = softmax(x / divisor + mask)</c> along the last axis, or <c>x * factor</c> when the model multiplied; the mask
/// broadcasts to x. One pass per row instead of three over the tensor; each value is computed as the three ops compute it.
/// float32.
/// </summary>
[OnnxOperator("MaskedSoftmax", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class MaskedSoftmax(float scale, bool divide) : Operator
{
    public static Operator Create(OperatorBuildContext context) =>
        new MaskedSoftmax(context.Float("scale", 1f), context.Int("divide", 0) != 0);

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        var mask = call.Input(1);
        if (x.ElementType != TensorElementType.Float32 || mask.ElementType != TensorElementType.Float32)
            throw new NotSupportedException($"{call.Context.Node}: only float32 scores and masks are supported, not {x.ElementType.DisplayName()} and {mask.ElementType.DisplayName()}.");
        var shape = Broadcast.Shape(x.Shape, mask.Shape, call.Context.Node);
        if (!shape.AsSpan().SequenceEqual(x.Shape) || x.Rank == 0)
            throw new InvalidOperationException($"{call.Context.Node}: the mask {Tensor.Format(mask.Shape)} must broadcast to the scores {Tensor.Format(x.Shape)}.");
        int n = x.Shape[^1], rows = x.Length / Math.Max(1, n);
        var output = call.Output(0, TensorElementType.Float32, x.ShapeArray);
        if (x.Length == 0) return;
        var xs = (float[])x.Buffer.Data;
        var ms = (float[])mask.Buffer.Data;
        var ys = (float[])output.Buffer.Data;
        var strides = Broadcast.Strides(mask.Shape, x.Shape);
        bool maskRuns = strides[^1] != 0; // else one mask value per row
        float s = scale;
        bool div = divide;
        ParallelRanges.For(rows, n, call.Context.DegreeOfParallelism, (start, end) =>
        {
            for (int r = start; r < end; r++)
            {
                int offset = MaskOffset(r, x.ShapeArray, strides);
                Row(xs.AsSpan(r * n, n), maskRuns ? ms.AsSpan(offset, n) : ms.AsSpan(offset, 1), s, div, ys.AsSpan(r * n, n));
            }
        });
    }

    /// <summary>
    /// One row: <c>v = x / s + mask</c> (or <c>x * s</c>) with its maximum in the same pass, then exp and sum, then the
    /// division: three passes over a row that stays in L1. A mask of one element applies to the whole row.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Row(ReadOnlySpan<float> x, ReadOnlySpan<float> mask, float s, bool divide, Span<float> y)
    {
        int n = x.Length, i = 0;
        bool perElement = mask.Length == n && n != 1;
        float max = float.NegativeInfinity;
        if (Vector256.IsHardwareAccelerated && n >= Vector256<float>.Count)
        {
            var scale = Vector256.Create(s);
            var single = Vector256.Create(mask[0]);
            var highest = Vector256.Create(float.NegativeInfinity);
            for (; i <= n - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var v = Vector256.Create(x.Slice(i, Vector256<float>.Count));
                v = divide ? v / scale : v * scale;
                v += perElement ? Vector256.Create(mask.Slice(i, Vector256<float>.Count)) : single;
                v.CopyTo(y.Slice(i, Vector256<float>.Count));
                highest = Vector256.Max(highest, v);
            }
            for (int lane = 0; lane < Vector256<float>.Count; lane++) max = MathF.Max(max, highest.GetElement(lane));
        }
        for (; i < n; i++)
        {
            float v = (divide ? x[i] / s : x[i] * s) + (perElement ? mask[i] : mask[0]);
            y[i] = v;
            max = MathF.Max(max, v);
        }
        Softmax.ExpNormalize(y, y, max);
    }

    /// <summary>Where row <paramref name="row"/> of the scores (all axes but the last) starts in the broadcast mask.</summary>
    private static int MaskOffset(int row, int[] shape, int[] strides)
    {
        int offset = 0;
        for (int d = shape.Length - 2; d >= 0; d--)
        {
            offset += row % shape[d] * strides[d];
            row /= shape[d];
        }
        return offset;
    }
}
