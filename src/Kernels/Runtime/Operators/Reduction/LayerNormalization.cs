using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using Quantize.Kernels.Models;

namespace Quantize.Kernels.Runtime.Operators;

/// <summary>
/// LayerNormalization (opset 17): each row of the axes from <c>axis</c> on is normalized to zero mean and unit
/// variance (population variance plus epsilon), then scaled and shifted by Scale and the optional B, which
/// broadcast to those axes. The optional Mean and InvStdDev outputs keep the leading axes and put 1 in the
/// normalized ones. float32 (float16 read as float32, with float32 Mean/InvStdDev as stash_type=1 says) and float64.
/// </summary>
[OnnxOperator("LayerNormalization", 17)]
[OnnxOperator("LayerNormalization", 1, Planning.PlanBuilder.FusedDomain)]
internal sealed class LayerNormalization(long axis, float epsilon) : Operator
{
    public static Operator Create(OperatorBuildContext context)
    {
        long stash = context.Int("stash_type", 1);
        if (stash != 1) throw context.Unsupported($"LayerNormalization with stash_type={stash} (only 1, float32, is implemented)");
        return new LayerNormalization(context.Int("axis", -1), context.Float("epsilon", 1e-5f));
    }

    public override void Run(OperatorCall call)
    {
        var x = call.Input(0);
        var scale = call.Input(1);
        var bias = call.OptionalInput(2);
        int rank = x.Rank;
        long a = axis < 0 ? axis + rank : axis;
        if (a < 0 || a >= rank)
            throw new InvalidOperationException($"{call.Context.Node}: axis {axis} is out of range for rank {rank}.");
        int outer = 1, n = 1;
        for (int d = 0; d < rank; d++)
        {
            if (d < a) outer *= x.Shape[d];
            else n *= x.Shape[d];
        }
        var normalizedShape = x.ShapeArray[(int)a..];
        var statsShape = x.ShapeArray.Select((size, d) => d < a ? size : 1).ToArray();
        switch (x.ElementType)
        {
            case TensorElementType.Float32:
            {
                var y = call.Output(0, x.ElementType, x.ShapeArray);
                Normalize(call, (float[])x.Buffer.Data, Expand<float>(scale, normalizedShape, call), bias is null ? null : Expand<float>(bias, normalizedShape, call),
                    (float[])y.Buffer.Data, statsShape, TensorElementType.Float32, outer, n, epsilon);
                break;
            }
            case TensorElementType.Float64:
            {
                var y = call.Output(0, x.ElementType, x.ShapeArray);
                Normalize(call, (double[])x.Buffer.Data, Expand<double>(scale, normalizedShape, call), bias is null ? null : Expand<double>(bias, normalizedShape, call),
                    (double[])y.Buffer.Data, statsShape, TensorElementType.Float64, outer, n, epsilon);
                break;
            }
            case TensorElementType.Float16:
            {
                var wide = FloatWidening.ToFloat(x);
                var wideScale = FloatWidening.ToFloat(scale);
                var wideBias = bias is null ? null : FloatWidening.ToFloat(bias);
                var result = TensorPool.Rent(TensorElementType.Float32, x.ShapeArray);
                Normalize(call, (float[])wide.Buffer.Data, Expand<float>(wideScale, normalizedShape, call), wideBias is null ? null : Expand<float>(wideBias, normalizedShape, call),
                    (float[])result.Buffer.Data, statsShape, TensorElementType.Float32, outer, n, epsilon);
                var source = result.AsSpan<float>();
                var target = call.Output(0, TensorElementType.Float16, x.ShapeArray).AsSpan<Half>();
                for (int i = 0; i < source.Length; i++) target[i] = (Half)source[i];
                foreach (var temporary in new[] { wide, wideScale, wideBias, result }) temporary?.Buffer.Release();
                break;
            }
            default:
                throw new NotSupportedException($"{call.Context.Node}: LayerNormalization of {x.ElementType.DisplayName()} is not supported.");
        }
    }

    /// <summary>Scale or B as one value per element of a normalized row (broadcast if it is smaller).</summary>
    private static T[] Expand<T>(Tensor parameter, int[] normalizedShape, OperatorCall call)
    {
        int n = Tensor.CountElements(normalizedShape);
        var values = (T[])parameter.Buffer.Data;
        if (parameter.Length == n) return values;
        if (!Broadcast.Shape(parameter.Shape, normalizedShape, call.Context.Node).AsSpan().SequenceEqual(normalizedShape))
            throw new InvalidOperationException($"{call.Context.Node}: a parameter of shape {Tensor.Format(parameter.Shape)} does not broadcast to the normalized shape {Tensor.Format(normalizedShape)}.");
        var expanded = new T[n];
        var strides = new[] { Broadcast.Strides(parameter.Shape, normalizedShape) };
        Broadcast.ForEachRun(normalizedShape, strides, (start, length, offsets, advancing) =>
        {
            if (advancing[0]) values.AsSpan(offsets[0], length).CopyTo(expanded.AsSpan(start, length));
            else expanded.AsSpan(start, length).Fill(values[offsets[0]]);
        });
        return expanded;
    }

    /// <summary>Normalizes the <paramref name="outer"/> rows of <paramref name="n"/> values; shares of rows run on separate threads.</summary>
    private static void Normalize<T>(OperatorCall call, T[] x, T[] scale, T[]? bias, T[] y, int[] statsShape, TensorElementType statsType, int outer, int n, float epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        T[]? means = call.OutputCount > 1 ? (T[])call.Output(1, statsType, statsShape).Buffer.Data : null;
        T[]? inverses = call.OutputCount > 2 ? (T[])call.Output(2, statsType, statsShape).Buffer.Data : null;
        ParallelRanges.For(outer, n, call.Context.DegreeOfParallelism, (start, end) => Rows(x, scale, bias, y, means, inverses, start, end, n, epsilon));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Rows<T>(T[] x, T[] scale, T[]? bias, T[] y, T[]? means, T[]? inverses, int start, int end, int n, float epsilon)
        where T : unmanaged, IFloatingPointIeee754<T>
    {
        var gamma = scale.AsSpan(0, n);
        var beta = bias is null ? default : bias.AsSpan(0, n);
        T count = T.CreateChecked(n), eps = T.CreateChecked(epsilon);
        for (int o = start; o < end; o++)
        {
            var row = x.AsSpan(o * n, n);
            var target = y.AsSpan(o * n, n);
            T mean = TensorPrimitives.Sum<T>(row) / count;
            TensorPrimitives.Subtract(row, mean, target);
            T variance = TensorPrimitives.SumOfSquares<T>(target) / count;
            T inverse = T.One / T.Sqrt(variance + eps);
            TensorPrimitives.Multiply(target, inverse, target);
            if (bias is null) TensorPrimitives.Multiply(target, gamma, target);
            else TensorPrimitives.FusedMultiplyAdd(target, gamma, beta, target);
            if (means is not null) means[o] = mean;
            if (inverses is not null) inverses[o] = inverse;
        }
    }
}
