namespace Quantize.Build.Tasks.Tests;

/// <summary>The task helpers: output names, target paths, the options stamp and calibration paths.</summary>
public class QuantizeItemsTests
{
    private static readonly string Project = Path.Combine(Path.GetTempPath(), "proj");

    [Theory]
    [InlineData("Models/encoder.onnx", "dynamic", "encoder.dynamic.onnx")]
    [InlineData("graph.pb", "Weights", "graph.weights.pb")]
    [InlineData("noext", "int4", "noext.int4.onnx")]
    public void Default_output_name_is_name_mode_extension(string model, string mode, string expected) =>
        Assert.Equal(expected, QuantizeItems.DefaultOutputName(model, mode));

    [Theory]
    [InlineData("Models/encoder.onnx", "dynamic")]
    [InlineData("graphs/frozen.PB", "weights")]
    public void Without_a_mode_a_graph_takes_weights_and_an_onnx_model_dynamic(string model, string expected) =>
        Assert.Equal(expected, QuantizeItems.DefaultMode(model));

    [Fact]
    public void Target_path_keeps_the_folder_inside_the_project_and_drops_it_outside()
    {
        Assert.Equal("Models/deep/e.dynamic.onnx",
            QuantizeItems.TargetPath(Path.Combine(Project, "Models", "deep", "e.onnx"), Project, "e.dynamic.onnx", null, null));
        Assert.Equal("e.dynamic.onnx", QuantizeItems.TargetPath(Path.Combine(Project, "e.onnx"), Project, "e.dynamic.onnx", null, null));
        Assert.Equal("e.dynamic.onnx",
            QuantizeItems.TargetPath(Path.Combine(Path.GetTempPath(), "elsewhere", "e.onnx"), Project, "e.dynamic.onnx", null, null));
    }

    [Fact]
    public void TargetPath_wins_over_Link_which_wins_over_the_default()
    {
        string model = Path.Combine(Project, "Models", "e.onnx");
        Assert.Equal("assets/m.onnx", QuantizeItems.TargetPath(model, Project, "e.dynamic.onnx", "assets\\m.onnx", null));
        Assert.Equal("t/m.onnx", QuantizeItems.TargetPath(model, Project, "e.dynamic.onnx", "assets/m.onnx", "t/m.onnx"));
        Assert.True(QuantizeItems.IsContained("a/b.onnx"));
        Assert.False(QuantizeItems.IsContained("../b.onnx"));
        Assert.False(QuantizeItems.IsContained(Path.GetFullPath("/b.onnx")));
    }

    private static List<KeyValuePair<string, string>> Metadata(params (string, string)[] pairs) =>
        pairs.Select(p => KeyValuePair.Create(p.Item1, p.Item2)).ToList();

    [Fact]
    public void Stamp_changes_with_options_and_version_but_not_with_placement_or_order()
    {
        string baseline = QuantizeItems.StampText(Metadata(("Mode", "dynamic"), ("PerChannel", "true")), "1.0.0");
        Assert.Equal(baseline, QuantizeItems.StampText(Metadata(("PerChannel", "true"), ("Mode", "dynamic")), "1.0.0"));
        Assert.Equal(baseline, QuantizeItems.StampText(
            Metadata(("Mode", "dynamic"), ("PerChannel", "true"), ("CopyToOutputDirectory", "Always"), ("Link", "x.onnx"), ("EmbedAsResource", "true"),
                ("_QuantizeOutput", "/obj/x.onnx"), ("BlockSize", "")), "1.0.0"));
        Assert.NotEqual(baseline, QuantizeItems.StampText(Metadata(("Mode", "static"), ("PerChannel", "true")), "1.0.0"));
        Assert.NotEqual(baseline, QuantizeItems.StampText(Metadata(("Mode", "dynamic"), ("PerChannel", "false")), "1.0.0"));
        Assert.NotEqual(baseline, QuantizeItems.StampText(Metadata(("Mode", "dynamic"), ("PerChannel", "true"), ("Calibration", "data")), "1.0.0"));
        Assert.NotEqual(baseline, QuantizeItems.StampText(Metadata(("Mode", "dynamic"), ("PerChannel", "true")), "1.0.1"));
        // Input files: another file, or one more, changes it; the same files give the same stamp.
        string root = Directory.CreateTempSubdirectory("quantize-stamp-").FullName;
        try
        {
            string a = Path.Combine(root, "a.onnx"), b = Path.Combine(root, "b.pb");
            File.WriteAllBytes(a, [1, 2]);
            File.WriteAllBytes(b, [3]);
            string withA = QuantizeItems.StampText(Metadata(("Mode", "dynamic")), "1.0.0", [a]);
            Assert.Equal(withA, QuantizeItems.StampText(Metadata(("Mode", "dynamic")), "1.0.0", [a]));
            Assert.NotEqual(withA, QuantizeItems.StampText(Metadata(("Mode", "dynamic")), "1.0.0", [b]));
            Assert.NotEqual(withA, QuantizeItems.StampText(Metadata(("Mode", "dynamic")), "1.0.0", [a, b]));
            File.SetLastWriteTimeUtc(a, File.GetLastWriteTimeUtc(a).AddDays(-3));
            Assert.NotEqual(withA, QuantizeItems.StampText(Metadata(("Mode", "dynamic")), "1.0.0", [a]));
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
        // One line, no MSBuild special characters: it goes through WriteLinesToFile as is.
        Assert.DoesNotContain(baseline, c => c is ';' or '%' or '*' or '?' or '@' or '$' or '\n');
    }

    [Fact]
    public void Calibration_folder_lists_its_files_and_a_glob_its_matching_folders()
    {
        string root = Directory.CreateTempSubdirectory("quantize-calibration-").FullName;
        try
        {
            foreach (string sample in new[] { "s2", "s10", "s1", "other" }) TestModels.WriteSample(Path.Combine(root, "data", sample), sample.Length);
            TestModels.WriteSample(Path.Combine(root, "data", "nested", "s3"), 3);

            var folder = CalibrationPaths.Resolve("data", root)!;
            Assert.Equal(Path.Combine(root, "data"), folder.Folder);
            Assert.Equal(5, folder.Files.Count);
            Assert.Equal(folder.Files.Order(StringComparer.Ordinal), folder.Files);

            var glob = CalibrationPaths.Resolve("data/s*", root)!;
            Assert.Null(glob.Folder);
            Assert.Equal(new[] { "s1", "s10", "s2" }, glob.Samples.Select(Path.GetFileName));
            Assert.Equal(3, glob.Files.Count);

            var deep = CalibrationPaths.Resolve("data/**/s?", root)!;
            Assert.Equal(new[] { "s3", "s1", "s2" }.Order(StringComparer.Ordinal), deep.Samples.Select(Path.GetFileName).Order(StringComparer.Ordinal));
            Assert.Null(CalibrationPaths.Resolve(" ", root));
            Assert.Empty(CalibrationPaths.Resolve("data/none*", root)!.Samples);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
